"""The field catalogs a role's field rules can name, registered by the apps that own them.

crm never imports a domain app, yet Settings → Roles & Permissions lists contact fields and
deal fields. So each app registers its catalog here from its AppConfig.ready():

    register_field_catalog("contacts", "Contact fields", contact_field_catalog)

`catalog(org)` returns the fields a rule can name: FieldSpec-like objects (key, label, group,
editable) or tuples (key, label[, group[, editable]]). The rule keys stored in
Role.field_rules are the field keys with the module's prefix (crm.permissions
FIELD_RULE_PREFIXES): "email" for a contact field, "deal.value" for a deal's value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .permissions import (
    FIELD_RULE_NOUNS,
    FIELD_RULE_PREFIXES,
    FIELD_RULES_MODULE,
    MODULE_KEYS,
    field_rule_target,
)


@dataclass(frozen=True)
class RuleField:
    """One field a rule can name: `key` is the rule key (with its prefix), `field` the field's
    own key (what Policy.field_level is asked with, with the section's module)."""

    key: str
    field: str
    label: str
    group: str
    editable: bool


@dataclass(frozen=True)
class FieldRuleSection:
    module: str  # the policy module whose rights the fields follow
    title: str  # the heading on the role page: "Contact fields"
    catalog: Callable[..., Iterable]
    help: str = ""  # a sentence under the heading, about fields that have no rule

    @property
    def prefix(self) -> str:
        return FIELD_RULE_PREFIXES.get(self.module, "")

    @property
    def noun(self) -> str:
        """How messages name one of its fields: "contact field", "deal field"."""
        return FIELD_RULE_NOUNS.get(self.module, "field")

    @property
    def records(self) -> str:
        """The records the fields belong to: "contacts", "deals"."""
        return self.noun.removesuffix(" field") + "s"

    def fields(self, org) -> list[RuleField]:
        out = []
        for spec in self.catalog(org):
            if isinstance(spec, tuple | list):
                key, label = spec[0], spec[1]
                group = spec[2] if len(spec) > 2 else ""
                editable = spec[3] if len(spec) > 3 else True
            else:
                key, label = spec.key, spec.label
                group, editable = getattr(spec, "group", ""), getattr(spec, "editable", True)
            out.append(
                RuleField(self.prefix + key, key, str(label), str(group or ""), bool(editable))
            )
        return out


_SECTIONS: dict[str, FieldRuleSection] = {}


def register_field_catalog(
    module: str, title: str, catalog: Callable[..., Iterable], *, help: str = ""
) -> None:
    """Let role field rules name the fields `catalog(org)` lists, under module `module`'s
    rights. Registering a module again replaces its catalog (ready() may run twice in tests)."""
    if module not in MODULE_KEYS:
        raise ValueError(f"Unknown module {module!r}.")
    if module != FIELD_RULES_MODULE and module not in FIELD_RULE_PREFIXES:
        raise ValueError(f"Field rules of {module!r} need a key prefix in FIELD_RULE_PREFIXES.")
    _SECTIONS[module] = FieldRuleSection(module, title, catalog, help)


def field_rule_sections() -> list[FieldRuleSection]:
    """The registered sections in the order of the modules (contacts first)."""
    return sorted(_SECTIONS.values(), key=lambda section: MODULE_KEYS.index(section.module))


def field_rule_section(module: str) -> FieldRuleSection | None:
    return _SECTIONS.get(module)


def section_of_rule_key(key: str) -> FieldRuleSection | None:
    """The section a stored rule key belongs to (a key without another module's prefix is a
    contact field's, as rules were before other modules had any)."""
    return _SECTIONS.get(field_rule_target(key)[0])
