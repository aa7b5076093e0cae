import pytest

from .fake_openai import FakeOpenAI


@pytest.fixture
def fake_openai(settings):
    """A configured provider: the OpenAI client pointed at a local fake."""
    with FakeOpenAI() as fake:
        settings.OPENAI_API_KEY = "sk-test"
        settings.OPENAI_BASE_URL = fake.base_url
        settings.OPENAI_MODEL = "test-model"
        yield fake
