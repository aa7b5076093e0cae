"""The words demo data is made of: first and last names, job titles, sources, stages and
the other weighted choices, countries (cities, languages, time zones, phone formats),
company names, tags, and the wording of notes, tasks and timeline entries.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass


def words(text: str) -> list[str]:
    return text.split()


FIRST_NAMES = words(
    "Olivia Liam Emma Noah Amelia Oliver Sophia Elijah Isabella Lucas Mia Mateo Charlotte Levi "
    "Ava Ethan Harper James Luna Aiden Camila Benjamin Gianna Leo Aria Henry Ella Jack Nora "
    "Sebastian Hazel Daniel Zoe Michael Riley Owen Layla Samuel Lily Wyatt Aurora Julian Ellie "
    "Hudson Violet Grayson Nova Ezra Emilia Theo Willow Asher Stella Jayden Maya Isaac Paisley "
    "Aaliyah Omar Fatima Yusuf Priya Arjun Ananya Rohan Mei Wei Hiroshi Yuki Sakura Kenji Ji-woo "
    "Min-jun Seo-yeon Chloé Léa Louis Hugo Jules Manon Lukas Lena Jonas Mia Finn Emma Sven Ingrid "
    "Søren Astrid Mateus Beatriz João Ana Sofía Diego Valentina Santiago Lucía Alejandro Chiara "
    "Giulia Marco Francesca Ahmed Leila Tariq Nadia Kwame Ama Chinedu Ngozi Thabo Zanele Sipho "
    "Aleksander Zofia Piotr Katarzyna Dmitri Anastasia Ivan Olga Tomás Aoife Ciarán Siobhán "
    "Rafael Gabriela Pedro Camille Noémie Eleanor Margaret Thomas William Catherine Patrick"
)
LAST_NAMES = words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris "
    "Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill "
    "Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Müller Schmidt "
    "Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Dubois Martin Bernard Thomas "
    "Robert Richard Petit Durand Leroy Moreau Rossi Russo Ferrari Esposito Bianchi Romano Colombo "
    "Silva Santos Oliveira Souza Pereira Costa Almeida Kowalski Nowak Wiśniewski Jensen Nielsen "
    "Hansen Andersson Johansson Karlsson Nilsson Sato Suzuki Takahashi Tanaka Watanabe Kim Park "
    "Choi Chen Wang Zhang Liu Patel Shah Singh Kumar Sharma Gupta Khan Ali Hussain Okafor Mensah "
    "Adeyemi Nkosi Dlamini O'Brien O'Connor Murphy Kelly Byrne Walsh Lindqvist Haddad Jansen"
)
# (title, department, weight)
TITLES = [
    ("VP Sales", "Sales", 6),
    ("VP Marketing", "Marketing", 5),
    ("VP Engineering", "Engineering", 4),
    ("CTO", "Engineering", 4),
    ("CEO", "Executive", 4),
    ("CFO", "Finance", 3),
    ("COO", "Operations", 2),
    ("Founder", "Executive", 2),
    ("Head of Ops", "Operations", 5),
    ("Head of Growth", "Marketing", 4),
    ("Head of Procurement", "Procurement", 3),
    ("Director of Engineering", "Engineering", 4),
    ("Director of Sales", "Sales", 4),
    ("Sales Manager", "Sales", 7),
    ("Account Executive", "Sales", 7),
    ("Marketing Manager", "Marketing", 6),
    ("Product Manager", "Product", 6),
    ("Software Engineer", "Engineering", 8),
    ("Data Analyst", "Finance", 4),
    ("Operations Analyst", "Operations", 4),
    ("Customer Success Manager", "Customer Success", 5),
    ("IT Manager", "IT", 4),
    ("Office Manager", "Operations", 3),
    ("HR Business Partner", "People", 3),
    ("Procurement Lead", "Procurement", 3),
]
SOURCES = [
    ("Website", 20),
    ("Referral", 12),
    ("LinkedIn", 12),
    ("Webinar", 8),
    ("Trade show", 6),
    ("Cold outreach", 10),
    ("Partner", 6),
    ("Google Ads", 8),
    ("Newsletter", 6),
    ("Import", 12),
]
STAGES = [
    ("stage", 8),
    ("lead", 34),
    ("qualified", 20),
    ("opportunity", 12),
    ("customer", 15),
    ("advocate", 4),
    ("churned", 7),
]
STATUSES = [("active", 86), ("inactive", 6), ("unsubscribed", 5), ("bounced", 3)]
CONSENT = [("opted_in", 42), ("opted_out", 8), ("pending", 12), ("unknown", 38)]
DEAL_ROLES = [
    ("", 40),
    ("decision_maker", 14),
    ("influencer", 14),
    ("champion", 10),
    ("blocker", 4),
    ("end_user", 14),
    ("other", 4),
]
INDUSTRY_FIT = [("Strong", 30), ("Medium", 40), ("Weak", 20), (None, 10)]


def _digits(rng: random.Random, n: int) -> str:
    low = 10 ** (n - 1)
    return str(low + int(rng.random() * 9 * low))


def _nxx(rng: random.Random) -> str:
    """A North American local number: the exchange never starts with 0 or 1."""
    return f"{200 + int(rng.random() * 800)}{int(rng.random() * 10000):04d}"


_ASCII = str.maketrans({"ø": "o", "Ø": "O", "ß": "ss", "æ": "ae", "ł": "l", "đ": "d"})


def ascii_for_email(text: str) -> str:
    """Text for an email address: accents dropped ("Lucía" → "lucia")."""
    folded = unicodedata.normalize("NFKD", text.translate(_ASCII))
    return folded.encode("ascii", "ignore").decode()


@dataclass(frozen=True)
class Country:
    code: str
    language: str
    timezone: str
    cities: tuple  # (city, region, postal code prefix)
    phone: Callable[[random.Random], str]
    weight: int


COUNTRIES = [
    Country(
        "US",
        "en",
        "America/New_York",
        (
            ("New York", "NY", "100"),
            ("Boston", "MA", "021"),
            ("Austin", "TX", "787"),
            ("San Francisco", "CA", "941"),
            ("Chicago", "IL", "606"),
            ("Seattle", "WA", "981"),
        ),
        lambda r: f"+1{r.choice(['212', '617', '512', '415', '312', '206'])}{_nxx(r)}",
        40,
    ),
    Country(
        "CA",
        "en",
        "America/Toronto",
        (("Toronto", "ON", "M5V"), ("Vancouver", "BC", "V6B"), ("Montréal", "QC", "H2Y")),
        lambda r: f"+1{r.choice(['416', '604', '514'])}{_nxx(r)}",
        6,
    ),
    Country(
        "GB",
        "en",
        "Europe/London",
        (
            ("London", "England", "EC1"),
            ("Manchester", "England", "M1"),
            ("Edinburgh", "Scotland", "EH1"),
        ),
        lambda r: f"+44207{_digits(r, 7)}",
        12,
    ),
    Country(
        "DE",
        "de",
        "Europe/Berlin",
        (("Berlin", "Berlin", "101"), ("München", "Bayern", "803"), ("Hamburg", "Hamburg", "203")),
        lambda r: f"+4930{_digits(r, 8)}",
        10,
    ),
    Country(
        "FR",
        "fr",
        "Europe/Paris",
        (("Paris", "Île-de-France", "750"), ("Lyon", "Auvergne-Rhône-Alpes", "690")),
        lambda r: f"+331{_digits(r, 8)}",
        7,
    ),
    Country(
        "NL",
        "nl",
        "Europe/Amsterdam",
        (("Amsterdam", "Noord-Holland", "101"), ("Rotterdam", "Zuid-Holland", "301")),
        lambda r: f"+3120{_digits(r, 7)}",
        4,
    ),
    Country(
        "ES",
        "es",
        "Europe/Madrid",
        (("Madrid", "Madrid", "280"), ("Barcelona", "Cataluña", "080")),
        lambda r: f"+3491{_digits(r, 7)}",
        4,
    ),
    Country(
        "SE",
        "sv",
        "Europe/Stockholm",
        (("Stockholm", "Stockholm", "111"), ("Göteborg", "Västra Götaland", "411")),
        lambda r: f"+468{_digits(r, 7)}",
        3,
    ),
    Country(
        "AU",
        "en",
        "Australia/Sydney",
        (("Sydney", "NSW", "200"), ("Melbourne", "VIC", "300")),
        lambda r: f"+6129{_digits(r, 7)}",
        4,
    ),
    Country(
        "IN",
        "en",
        "Asia/Kolkata",
        (("Mumbai", "Maharashtra", "400"), ("Bengaluru", "Karnataka", "560")),
        lambda r: f"+91222{_digits(r, 7)}",
        4,
    ),
    Country(
        "BR",
        "pt",
        "America/Sao_Paulo",
        (("São Paulo", "SP", "010"), ("Rio de Janeiro", "RJ", "200")),
        lambda r: f"+55113{_digits(r, 7)}",
        3,
    ),
    Country(
        "JP",
        "ja",
        "Asia/Tokyo",
        (("Tokyo", "Tokyo", "100"), ("Osaka", "Osaka", "530")),
        lambda r: f"+813{_digits(r, 8)}",
        3,
    ),
]
STREETS = (
    "Main Street",
    "Market Street",
    "High Street",
    "Park Avenue",
    "Oak Lane",
    "Harbor Road",
    "King Street",
    "Station Road",
    "Elm Street",
    "Mill Lane",
    "Church Road",
    "River Drive",
)
COMPANY_FIRST = words(
    "Northwind Blue Harbor Summit Pioneer Evergreen Silverline Redwood Bright Atlas Cobalt "
    "Granite Lumen Nimbus Orbit Quantum Riverstone Sterling Vertex Willow Aurora Beacon Cedar "
    "Delta Ember Falcon Golden Horizon Ironwood Juniper Keystone Lakeside Meridian Nova Oakridge"
)
COMPANY_SECOND = words(
    "Logistics Analytics Robotics Foods Health Capital Software Energy Labs Media Partners "
    "Systems Retail Motors Biotech Consulting Networks Apparel Studios Security"
)
COMPANY_SUFFIX = ("Inc", "Ltd", "GmbH", "Group", "Co", "LLC", "SA", "BV")
INDUSTRIES = {
    "Logistics": "Transportation",
    "Analytics": "Software",
    "Robotics": "Manufacturing",
    "Foods": "Food & Beverage",
    "Health": "Healthcare",
    "Capital": "Financial Services",
    "Software": "Software",
    "Energy": "Energy",
    "Labs": "Research",
    "Media": "Media",
    "Partners": "Professional Services",
    "Systems": "IT Services",
    "Retail": "Retail",
    "Motors": "Automotive",
    "Biotech": "Biotechnology",
    "Consulting": "Professional Services",
    "Networks": "Telecommunications",
    "Apparel": "Apparel",
    "Studios": "Media",
    "Security": "Cybersecurity",
}
TAG_NAMES = [
    ("vip", "#e5484d"),
    ("newsletter", "#3e9b4f"),
    ("event-2026", "#6d8cff"),
    ("partner", "#a66bd3"),
    ("trial", "#f5a524"),
    ("enterprise", "#0091ff"),
    ("churn-risk", "#d6409f"),
    ("decision-maker", "#12a594"),
]
NOTE_BODIES = (
    "Intro call went well. They are evaluating two other vendors; decision expected next quarter.",
    "Asked for a security questionnaire and our SOC 2 report. Sent both.",
    "Budget approved for a pilot with one team. Follow up after their planning week.",
    "Prefers email over calls. Out of office until the 20th.",
    "Met at the trade show booth; interested in the reporting add-on.",
    "Champion inside the account. Introduced us to the head of procurement.",
    "Renewal conversation started. Wants a multi-year discount.",
    "Raised concerns about onboarding time. Share the migration guide.",
    "Pricing feedback: per-seat model is hard for their seasonal staff.",
    "Signed the NDA. Next step: technical deep dive with their architects.",
)
TASK_TITLES = (
    "Send the proposal",
    "Follow up on the pilot",
    "Book a demo with the team",
    "Prepare the renewal quote",
    "Call back about pricing",
    "Share the case study",
    "Check in after onboarding",
    "Confirm the meeting agenda",
    "Send the contract for signature",
    "Introduce the solutions engineer",
)
MEETING_SUBJECTS = ("Discovery call", "Product demo", "Pricing review", "Quarterly review")
EMAIL_SUBJECTS = ("Following up", "Your trial", "Proposal attached", "Quick question")

SALES_ROLES = ("owner", "admin", "director", "executive", "team", "partner")
