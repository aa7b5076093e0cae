"""The one way the project talks to a language model: OpenAI's client library, pointed at
settings.OPENAI_BASE_URL when set (tests use a local fake server).

Without OPENAI_API_KEY `client()` is None and every caller uses its deterministic path, so
no feature depends on a model being there.

A call has a total time budget. The library's timeout applies to each step (connect, each
read) and a reply that trickles in can outlast it, so the call runs on a small pool of
threads and the caller stops waiting when the budget is spent; the abandoned request ends on
its own at the library's timeout. Retries are off: the budget is for one try.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import threading
from urllib.parse import urlsplit

from django.conf import settings

log = logging.getLogger(__name__)

DEFAULT_BUDGET_SECONDS = 5.0
# Calls in flight at once, per process. A call over its budget keeps its thread until the
# library's own timeout ends it; later calls queue, and still stop waiting at their budget.
MAX_CONCURRENT_CALLS = 4

_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


class LLMError(Exception):
    """The model could not be reached or did not answer with what was asked."""


class LLMTimeout(LLMError):
    """The model did not answer within the budget."""


class LLMUnavailable(LLMError):
    """The provider refused the connection or answered with an error."""


class LLMBadAnswer(LLMError):
    """The provider answered, but not with the JSON object that was asked for."""


def configured() -> bool:
    return bool(settings.OPENAI_API_KEY)


def provider_label() -> str:
    """Who receives what is sent: OpenAI, or the host of the endpoint the deployment set
    (only the host: a URL may carry credentials)."""
    if not settings.OPENAI_BASE_URL:
        return "OpenAI"
    host = urlsplit(settings.OPENAI_BASE_URL).hostname or "a custom endpoint"
    return f"the OpenAI-compatible service at {host}"


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    # Made on first use, so no thread exists before a server forks its workers.
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=MAX_CONCURRENT_CALLS, thread_name_prefix="llm"
            )
        return _pool


class LLMClient:
    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = "",
        model: str = "gpt-4o-mini",
        budget_seconds: float = DEFAULT_BUDGET_SECONDS,
    ):
        import openai

        self.model = model
        # A floor, so a zero or negative setting cannot turn into "no timeout" below.
        self.budget_seconds = max(float(budget_seconds), 0.1)
        self._client = openai.OpenAI(
            api_key=api_key,
            base_url=base_url or None,
            # Each step gets at most the whole budget; the total is enforced around the call.
            timeout=self.budget_seconds,
            max_retries=0,
        )

    def complete_json(self, *, system: str, user: str) -> dict:
        """One chat completion in JSON mode, parsed, within the budget. Raises LLMError
        (LLMTimeout, LLMUnavailable, LLMBadAnswer) on any failure."""
        future = _executor().submit(self._complete_json, system, user)
        try:
            return future.result(timeout=self.budget_seconds)
        except concurrent.futures.TimeoutError:
            future.cancel()  # still queued behind other calls: never sent
            raise LLMTimeout(
                f"The AI service did not answer within {self.budget_seconds:g} s."
            ) from None

    def _complete_json(self, system: str, user: str) -> dict:
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
        except openai.APITimeoutError as exc:
            raise LLMTimeout(f"The AI service did not answer in time: {exc}") from exc
        except openai.OpenAIError as exc:
            raise LLMUnavailable(f"The AI service did not answer: {exc}") from exc
        except Exception as exc:
            # Whatever else the library or its transport raises, the caller falls back to
            # its deterministic path instead of failing the member's request.
            log.exception("Unexpected error from the AI client")
            raise LLMUnavailable(f"The AI service could not be used: {exc}") from exc
        try:
            content = response.choices[0].message.content or ""
            data = json.loads(content)
        except (IndexError, AttributeError, TypeError, ValueError) as exc:
            raise LLMBadAnswer("The AI service answered with something that is not JSON.") from exc
        if not isinstance(data, dict):
            raise LLMBadAnswer("The AI service answered with JSON that is not an object.")
        return data


def client(*, budget_seconds: float = DEFAULT_BUDGET_SECONDS) -> LLMClient | None:
    if not configured():
        return None
    return LLMClient(
        api_key=settings.OPENAI_API_KEY,
        base_url=settings.OPENAI_BASE_URL,
        model=settings.OPENAI_MODEL,
        budget_seconds=budget_seconds,
    )
