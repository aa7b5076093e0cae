"""The one way the project talks to a language model: OpenAI's client library, pointed at
settings.OPENAI_BASE_URL when set (tests use a local fake server).

Without OPENAI_API_KEY `client()` is None and every caller uses its deterministic path, so
no feature depends on a model being there.
"""

from __future__ import annotations

import json
import logging

from django.conf import settings

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 15


class LLMError(Exception):
    """The model could not be reached or did not answer with what was asked."""


class LLMClient:
    def __init__(self, *, api_key: str, base_url: str = "", model: str = "gpt-4o-mini"):
        import openai

        self.model = model
        self._client = openai.OpenAI(
            api_key=api_key,
            base_url=base_url or None,
            timeout=TIMEOUT_SECONDS,
            max_retries=1,
        )

    def complete_json(self, *, system: str, user: str) -> dict:
        """One chat completion in JSON mode, parsed. Raises LLMError on any failure."""
        import openai

        try:
            response = self._client.chat.completions.create(
                model=self.model,
                temperature=0,
                response_format={"type": "json_object"},
                messages=[
                    {"role": "system", "content": system},
                    {"role": "user", "content": user},
                ],
            )
        except openai.OpenAIError as exc:
            raise LLMError(f"The AI service did not answer: {exc}") from exc
        try:
            content = response.choices[0].message.content or ""
            data = json.loads(content)
        except (IndexError, AttributeError, ValueError) as exc:
            raise LLMError("The AI service answered with something that is not JSON.") from exc
        if not isinstance(data, dict):
            raise LLMError("The AI service answered with JSON that is not an object.")
        return data


def client() -> LLMClient | None:
    if not settings.OPENAI_API_KEY:
        return None
    return LLMClient(
        api_key=settings.OPENAI_API_KEY,
        base_url=settings.OPENAI_BASE_URL,
        model=settings.OPENAI_MODEL,
    )
