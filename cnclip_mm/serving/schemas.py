"""Request bodies of the endpoints (pydantic): unknown fields are refused, so a typo is named, not ignored."""
from typing import List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, model_validator


class _Request(BaseModel):
    model_config = ConfigDict(extra='forbid')


class EmbeddingsRequest(_Request):
    """``POST /v1/embeddings``: ``input`` (texts, as OpenAI's API) or ``images`` (base64), not both.

    ``encoding_format``: ``'float'`` lists, or ``'base64'`` of little-endian float32 (what OpenAI's
    Python client asks for by default). ``model`` and ``user`` are accepted for OpenAI clients.
    """

    input: Optional[Union[str, List[str]]] = None
    images: Optional[Union[str, List[str]]] = None
    model: Optional[str] = None
    encoding_format: Literal['float', 'base64'] = 'float'
    user: Optional[str] = None

    @model_validator(mode='after')
    def _one_modality(self):
        if (self.input is None) == (self.images is None):
            raise ValueError("give exactly one of 'input' (texts) and 'images' (base64 images)")
        return self


class SearchRequest(_Request):
    """``POST /search``: a ``text`` or a base64 ``image`` query, the ``top_k`` nearest gallery items
    (default 10, or the server's ``max_top_k`` when lower)."""

    text: Optional[str] = None
    image: Optional[str] = None
    top_k: Optional[int] = None

    @model_validator(mode='after')
    def _one_query(self):
        if (self.text is None) == (self.image is None):
            raise ValueError("give exactly one of 'text' and 'image' (base64) as the query")
        return self


class ClassifyRequest(_Request):
    """``POST /classify``: base64 ``images`` (one or a list) among ``classes`` (zero-shot, default templates);
    ``top_k`` best classes listed (default 5, at most the number of classes)."""

    images: Union[str, List[str]]
    classes: List[str]
    top_k: Optional[int] = None


def as_list(value: Union[str, List[str]]) -> List[str]:
    return [value] if isinstance(value, str) else list(value)
