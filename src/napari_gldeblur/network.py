"""The global-local blur disentangling network (Li et al., Appl. Sci. 2021, Figure 2).

Two identical encoder-decoder branches extract local (Ψ_L) and global (Ψ_G) blur features,
a branch attention module fuses them (eq. 1) and a two-conv reconstruction module restores the
image. Where the paper is silent, choices follow its reference [37] (Zhang et al., "Gated Fusion
Network for Joint Image Deblurring and Super-Resolution", BMVC 2018, deblurring module) and are
marked "[37]" below. Inputs are (N, 3, H, W) float tensors in [0, 1]; gray images are repeated to
three channels by the callers (see ``inference.py``). Any H x W works: forward pads by reflection
to a multiple of ``MULTIPLE`` and crops back.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

MULTIPLE = 4  # two x2 downsamplings
VARIANTS = ("LB", "DB", "DBAF")  # Table 1: local branch only, dual branch (sum), dual branch + attention


@dataclass(frozen=True)
class NetConfig:
    """Size of the network: base width (doubled per scale, [37]) and residual blocks per scale.

    ``blocks`` is one count for all three scales (the paper: 6) or a count per scale, fine to coarse, as
    NAFNet's ``enc_blk_nums``: a block at the coarsest scale costs the same as one at full resolution
    (4x the channels, 1/16 the pixels) but sees 4x as far, which is what large blur needs.
    """

    width: int = 64
    blocks: int | tuple[int, int, int] = 6
    variant: str = "DBAF"

    def __post_init__(self):
        if not isinstance(self.blocks, int):  # a list from a checkpoint's config becomes a tuple
            object.__setattr__(self, "blocks", tuple(int(b) for b in self.blocks))

    def per_scale(self) -> tuple[int, int, int]:
        b = self.blocks
        return (b, b, b) if isinstance(b, int) else b

    def as_dict(self) -> dict:
        return asdict(self)


CONFIGS = {
    "paper": NetConfig(width=64, blocks=6),  # section 3.1: 6 residual blocks per scale, widths 64/128/256 ([37])
    "lite": NetConfig(width=16, blocks=1),  # compact CPU model, see README "Model sizes"
}


def conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def act() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2, inplace=True)  # [37] uses LeakyReLU


class ResidualBlock(nn.Module):
    """Two 3x3 convs, stride 1, with a short skip (section 3.1)."""

    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(conv(ch, ch), act(), conv(ch, ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Scale(nn.Module):
    """N residual blocks with a long skip from the scale's input to its output (section 3.1)."""

    def __init__(self, ch: int, blocks: int):
        super().__init__()
        self.blocks = nn.Sequential(*[ResidualBlock(ch) for _ in range(blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.blocks(x)


class Branch(nn.Module):
    """One blur-feature branch: 3-scale encoder, decoder of two transposed convs and three convs.

    ``features`` returns Ψ, the output of the decoder's first full-resolution conv; ``restore``
    turns Ψ into the branch's own restored image (the remaining two convs), used by eq. (2)/(3).
    """

    def __init__(self, width: int = 64, blocks: Sequence[int] = (6, 6, 6)):
        super().__init__()
        w1, w2, w3 = width, 2 * width, 4 * width  # widths double per scale ([37]: 64/128/256)
        b1, b2, b3 = blocks
        self.head = nn.Sequential(conv(3, w1, 7), act())  # 7x7 head conv ([37])
        self.enc1 = Scale(w1, b1)
        self.down1 = nn.Sequential(conv(w1, w2, 3, stride=2), act())  # stride-2 conv between scales ([37])
        self.enc2 = Scale(w2, b2)
        self.down2 = nn.Sequential(conv(w2, w3, 3, stride=2), act())
        self.enc3 = Scale(w3, b3)
        self.up2 = nn.Sequential(nn.ConvTranspose2d(w3, w2, 4, stride=2, padding=1), act())  # x2
        self.up1 = nn.Sequential(nn.ConvTranspose2d(w2, w1, 4, stride=2, padding=1), act())  # x2
        self.feature_conv = conv(w1, w1)  # decoder conv 1 -> Ψ
        # decoder convs 2, 3; the first activation is not in-place so Ψ itself stays unchanged for fusion
        self.image_convs = nn.Sequential(nn.LeakyReLU(0.2), conv(w1, w1), act(), conv(w1, 3))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        e1 = self.enc1(h)
        e2 = self.enc2(self.down1(e1))
        e3 = self.enc3(self.down2(e2))
        d2 = self.up2(e3) + e2  # skip from encoder scale 2
        d1 = self.up1(d2) + e1 + h  # skip from encoder scale 1 and the long skip from the head ([37])
        return self.feature_conv(d1)

    def restore(self, x: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
        return x + self.image_convs(psi)  # global residual: the branch predicts a correction to x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.restore(x, self.features(x))


class BranchAttention(nn.Module):
    """M(x, Ψ_L, Ψ_G): two convs over the concatenation, a sigmoid keeps the mask in [0, 1] (eq. 1)."""

    def __init__(self, width: int):
        super().__init__()
        self.mask = nn.Sequential(conv(3 + 2 * width, width), act(), conv(width, width), nn.Sigmoid())

    def forward(self, x: torch.Tensor, psi_l: torch.Tensor, psi_g: torch.Tensor) -> torch.Tensor:
        return self.mask(torch.cat([x, psi_l, psi_g], dim=1))


class Reconstruction(nn.Module):
    """Two 3x3 convs from Ψ_B to the image; we add a global residual from x (section 3.1 + our choice)."""

    def __init__(self, width: int):
        super().__init__()
        self.convs = nn.Sequential(conv(width, width), act(), conv(width, 3))

    def forward(self, x: torch.Tensor, psi_b: torch.Tensor) -> torch.Tensor:
        return x + self.convs(psi_b)


class DeblurOutput(NamedTuple):
    """What the network returns: the restored image, the branch features, the mask, branch images."""

    image: torch.Tensor
    local_features: torch.Tensor  # Ψ_L
    global_features: Optional[torch.Tensor]  # Ψ_G (None for LB-Net)
    attention: Optional[torch.Tensor]  # M (None for LB-Net and DB-Net)
    local_image: Optional[torch.Tensor] = None  # the local branch's own restoration (eq. 3)
    global_image: Optional[torch.Tensor] = None  # the global branch's own restoration (eq. 2)


class DBAFNet(nn.Module):
    """Dual-Branch Attention Fusion network and its ablation variants LB-Net and DB-Net (Table 1)."""

    def __init__(self, config: NetConfig = CONFIGS["paper"]):
        super().__init__()
        if config.variant not in VARIANTS:
            raise ValueError(f"unknown variant {config.variant!r}; choose one of {', '.join(VARIANTS)}")
        self.config = config
        w = config.width
        self.local_branch = Branch(w, config.per_scale())
        self.global_branch = Branch(w, config.per_scale()) if config.variant != "LB" else None
        self.attention = BranchAttention(w) if config.variant == "DBAF" else None
        self.reconstruction = Reconstruction(w)

    def fuse(self, x: torch.Tensor, psi_l: torch.Tensor, psi_g: Optional[torch.Tensor]):
        """Ψ_B from the branch features, per variant; returns (Ψ_B, M)."""
        if psi_g is None:  # LB-Net: the local branch alone
            return psi_l, None
        if self.attention is None:  # DB-Net: direct addition (section 4.2)
            return psi_l + psi_g, None
        m = self.attention(x, psi_l, psi_g)
        return psi_l * m + psi_g, m  # Ψ_B = Ψ_L ⊙ M(x, Ψ_L, Ψ_G) + Ψ_G   (1)

    def forward(self, x: torch.Tensor, branch_images: bool = False) -> DeblurOutput:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, MULTIPLE)
        psi_l = self.local_branch.features(x)
        psi_g = self.global_branch.features(x) if self.global_branch is not None else None
        psi_b, m = self.fuse(x, psi_l, psi_g)
        out = self.reconstruction(x, psi_b)
        local_img = self.local_branch.restore(x, psi_l) if branch_images else None
        global_img = self.global_branch.restore(x, psi_g) if branch_images and psi_g is not None else None
        return DeblurOutput(*(crop(t, h, w) for t in (out, psi_l, psi_g, m, local_img, global_img)))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad the bottom/right so H and W are multiples of ``multiple`` (replicate if too small)."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if (ph < h and pw < w) else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def crop(t: Optional[torch.Tensor], h: int, w: int) -> Optional[torch.Tensor]:
    return None if t is None else t[..., :h, :w]


def build(name_or_config: str | NetConfig = "lite", variant: str | None = None) -> DBAFNet:
    """A network from a config name (``paper``/``lite``) or a ``NetConfig``, optionally another variant."""
    config = CONFIGS[name_or_config] if isinstance(name_or_config, str) else name_or_config
    if variant is not None:
        config = NetConfig(config.width, config.blocks, variant)
    return DBAFNet(config)


def deepen(net: DBAFNet, blocks: tuple[int, int, int]) -> DBAFNet:
    """The same network with more residual blocks per scale, computing exactly what ``net`` computes.

    New blocks come after the trained ones with their second conv zeroed, so each starts as the identity
    (NAFNet starts its blocks the same way); training grows them from there (recipes/bundled.toml).
    """
    old = net.config.per_scale()
    if len(blocks) != 3 or any(b < a for a, b in zip(old, blocks)):
        raise ValueError(f"cannot go from {old} to {tuple(blocks)} blocks per scale: deepen only adds blocks")
    deep = DBAFNet(NetConfig(net.config.width, tuple(blocks), net.config.variant))
    for block in deep.modules():
        if isinstance(block, ResidualBlock):
            nn.init.zeros_(block.body[-1].weight)
            nn.init.zeros_(block.body[-1].bias)
    missing, unexpected = deep.load_state_dict(net.state_dict(), strict=False)
    assert not unexpected and all(".blocks." in k for k in missing), (missing, unexpected)
    return deep


def receptive_radius(config: NetConfig) -> int:
    """Pixels from an output pixel to the farthest input pixel it depends on (eq. 1 through reconstruction).

    14 px for the convs every config has, plus 2 / 4 / 8 px per residual block at the fine / middle / coarse
    scale (two 3x3 convs at 1, 1/2, 1/4 resolution); tiles overlap by this much by default.
    """
    b1, b2, b3 = config.per_scale()
    return 14 + 2 * b1 + 4 * b2 + 8 * b3


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
