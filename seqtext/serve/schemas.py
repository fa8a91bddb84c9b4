"""The JSON bodies of the API: what each endpoint accepts and answers (pydantic, shown at /docs).

Unknown fields are refused (a typo such as "temprature" is a 422, not a silently ignored option).
Limits that the server's flags set (text length, batch size, the max_new_tokens cap) are checked by
the endpoints, so that they answer 413 or 422 with the flag to change.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from seqtext.lm.generation import MAX_TEMPERATURE
from seqtext.schema import MAX_INT
from seqtext.textfiles import unicode_problem


def _valid_unicode(text: str) -> str:
    """A text field's value, when it is text: "\\ud800" is valid JSON but no text (the tokenizer refuses it)."""
    if problem := unicode_problem(text):
        raise ValueError(problem)
    return text


Text = Annotated[str, AfterValidator(_valid_unicode)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str | None = Field(
        None, description="A name from GET /v1/models; may be left out when one model of the needed kind is loaded"
    )


class CompleteRequest(Request):
    text: Text = Field(description="The text typed so far; suggestions are for the word at its end")
    k: int = Field(3, ge=1, le=MAX_INT, description="How many suggestions at most")


class Suggestion(BaseModel):
    word: str = Field(description="A whole word that replaces the partial word at the end of the text")
    prob: float = Field(description="The model's probability that this word comes next")


class CompleteResponse(BaseModel):
    model: str
    suggestions: list[Suggestion]


class LearnRequest(Request):
    text: str = Field(description="Finished text (one line or several) for the keyboard to learn its user's words from")


class LearnResponse(BaseModel):
    model: str
    words: int = Field(description="How many words were learned (counted again when already known)")


class GenerateRequest(Request):
    prompt: Text = Field("", description="Text to continue")
    max_new_tokens: int = Field(200, ge=0, le=MAX_INT, description="Tokens to sample at most (the server sets a cap)")
    temperature: float = Field(1.0, ge=0.0, le=MAX_TEMPERATURE, description="Sampling temperature; 0 means greedy")
    top_k: int | None = Field(None, ge=1, le=MAX_INT, description="Sample only from the K most likely tokens")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="Sample from the smallest set with probability ≥ P")
    seed: int = Field(0, ge=0, lt=2**63, description="Same seed, same text")
    stream: bool = Field(
        False,
        description='Answer with server-sent events: `token` events ({"text"}) as they are sampled, '
        'then one `done` event ({"text", "tokens"} of the whole continuation)',
    )


class GenerateResponse(BaseModel):
    model: str
    text: str = Field(description="The continuation only, not the prompt")
    tokens: int = Field(description="How many tokens were sampled")


class ClassifyRequest(Request):
    texts: list[Text] = Field(description="The texts to classify, answered in the same order")


class Prediction(BaseModel):
    label: int
    name: str
    probs: list[float] = Field(description="The probability of every label, in the order of `labels`")


class ClassifyResponse(BaseModel):
    model: str
    labels: list[str] = Field(description="Label names in id order")
    predictions: list[Prediction]


class ModelInfo(BaseModel):
    name: str
    kind: str = Field(description="lm (language model: complete, generate) or classifier (classify)")
    level: str
    cell: str
    vocab_size: int
    labels: list[str] | None = None
    can_complete: bool | None = None


class ModelsResponse(BaseModel):
    models: list[ModelInfo]


class Health(BaseModel):
    status: str
    version: str
    models: int


class ErrorBody(BaseModel):
    code: str = Field(description="unauthorized, not_found, unknown_model, wrong_kind, invalid_request, too_large, …")
    message: str = Field(description="One line saying what is wrong and what to do")


class ErrorResponse(BaseModel):
    error: ErrorBody
