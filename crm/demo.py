"""Hooks that let each app add its demo data to `manage.py seed_demo`.

An app puts its hooks in `<app>/demo.py`; seed_demo imports every such module."""

_HOOKS = []
_ARGUMENTS = []


def register(func):
    """`func(command, orgs, options)` adds an app's demo data; it must be idempotent."""
    _HOOKS.append(func)
    return func


def argument(*args, **kwargs):
    """Declare an option of seed_demo (e.g. --contacts N) from another app."""
    _ARGUMENTS.append((args, kwargs))


def add_arguments(parser):
    for args, kwargs in _ARGUMENTS:
        parser.add_argument(*args, **kwargs)


def run_hooks(command, orgs, options):
    for hook in _HOOKS:
        hook(command, orgs, options)
