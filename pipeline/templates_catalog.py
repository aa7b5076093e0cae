"""Ready-made pipelines by niche, offered when an admin creates a pipeline.

Each template is a list of open stages in order. Won and lost are not stages here (they are a
deal's status), so every template ends at the last step before the deal is won. Probabilities
rise along the way; rotting days say how long a deal may sit in a stage before it is flagged;
the forecast category is where a deal in that stage counts unless a rep sets it by hand.

The catalog is plain data: changing it never touches an existing pipeline, which keeps the
key of the template it came from (Pipeline.template) only to show it on the settings page.
"""

from __future__ import annotations

from dataclasses import dataclass

from .models import ForecastCategory

PIPELINE = ForecastCategory.PIPELINE
BEST_CASE = ForecastCategory.BEST_CASE
COMMIT = ForecastCategory.COMMIT


@dataclass(frozen=True)
class StageTemplate:
    name: str
    color: str  # #rrggbb
    probability: int  # 0..100
    rotting_days: int | None  # None: never flagged
    forecast_category: str = PIPELINE


@dataclass(frozen=True)
class PipelineTemplate:
    key: str
    name: str
    description: str
    stages: tuple[StageTemplate, ...]


TEMPLATES: tuple[PipelineTemplate, ...] = (
    PipelineTemplate(
        key="b2b_sales",
        name="B2B sales",
        description="Selling to companies: qualify the lead, show the product, send a proposal "
        "and negotiate the contract.",
        stages=(
            StageTemplate("New lead", "#64748b", 10, 7),
            StageTemplate("Qualified", "#3b82f6", 20, 14),
            StageTemplate("Demo held", "#6366f1", 40, 14),
            StageTemplate("Proposal sent", "#8b5cf6", 60, 10, BEST_CASE),
            StageTemplate("Negotiation", "#f59e0b", 80, 10, COMMIT),
            StageTemplate("Verbal yes", "#10b981", 90, 7, COMMIT),
        ),
    ),
    PipelineTemplate(
        key="real_estate",
        name="Real estate",
        description="Buyers and tenants from the first inquiry to a signed contract, with "
        "viewings and offers on the way.",
        stages=(
            StageTemplate("New inquiry", "#64748b", 10, 2),
            StageTemplate("Contacted", "#0ea5e9", 20, 5),
            StageTemplate("Viewing booked", "#3b82f6", 35, 7),
            StageTemplate("Viewed", "#6366f1", 50, 7, BEST_CASE),
            StageTemplate("Offer made", "#f59e0b", 70, 10, BEST_CASE),
            StageTemplate("Under contract", "#10b981", 90, 45, COMMIT),
        ),
    ),
    PipelineTemplate(
        key="ecommerce",
        name="E-commerce",
        description="Large or wholesale orders that need a person: answer questions, send a "
        "quote or a cart, and follow the payment.",
        stages=(
            StageTemplate("Inquiry", "#64748b", 10, 2),
            StageTemplate("Questions answered", "#06b6d4", 30, 3),
            StageTemplate("Quote or cart sent", "#8b5cf6", 50, 3, BEST_CASE),
            StageTemplate("Checkout started", "#f97316", 70, 2, BEST_CASE),
            StageTemplate("Awaiting payment", "#10b981", 90, 3, COMMIT),
        ),
    ),
    PipelineTemplate(
        key="post_sales",
        name="Post-sales",
        description="Revenue from existing customers: the handoff from sales, health checks, "
        "expansions and renewals.",
        stages=(
            StageTemplate("Customer handoff", "#64748b", 30, 7),
            StageTemplate("Health check", "#14b8a6", 40, 30),
            StageTemplate("Expansion spotted", "#3b82f6", 50, 21, BEST_CASE),
            StageTemplate("Renewal proposal", "#8b5cf6", 70, 14, BEST_CASE),
            StageTemplate("Renewal agreed", "#10b981", 90, 14, COMMIT),
        ),
    ),
    PipelineTemplate(
        key="onboarding",
        name="Onboarding",
        description="New customers from kickoff to going live: set-up, data, training. Won "
        "means the customer is live.",
        stages=(
            StageTemplate("Kickoff scheduled", "#64748b", 20, 5),
            StageTemplate("Account set up", "#0ea5e9", 40, 7),
            StageTemplate("Data imported", "#6366f1", 60, 7, BEST_CASE),
            StageTemplate("Team trained", "#f59e0b", 80, 10, COMMIT),
            StageTemplate("Go-live check", "#10b981", 95, 5, COMMIT),
        ),
    ),
    PipelineTemplate(
        key="scratch",
        name="Start from scratch",
        description="One stage to begin with; add the rest yourself.",
        stages=(StageTemplate("New", "#64748b", 10, None),),
    ),
)

TEMPLATES_BY_KEY = {template.key: template for template in TEMPLATES}
DEFAULT_TEMPLATE_KEY = "b2b_sales"
DEFAULT_PIPELINE_NAME = "Sales pipeline"

# The reasons an organization starts with; admins edit them in Settings → Pipelines.
DEFAULT_WON_REASONS = (
    "Best fit for their needs",
    "Price and value",
    "Relationship and trust",
    "Fast to implement",
    "Came through a referral",
)
DEFAULT_LOST_REASONS = (
    "Price too high",
    "Chose a competitor",
    "No budget",
    "No decision made",
    "Bad timing",
    "Missing a feature they need",
    "Stopped answering",
)


def template_choices() -> list[tuple[str, str]]:
    return [(template.key, template.name) for template in TEMPLATES]


def get_template(key: str) -> PipelineTemplate | None:
    return TEMPLATES_BY_KEY.get(key)
