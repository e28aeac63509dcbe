"""ASTER (Shi et al. 2019) as the STISR papers judge with it: ayumiymk/aster.pytorch's ``ModelBuilder`` with the
parameter names of its ``demo.pth.tar`` (``{'state_dict': ..., 'iters': ..., 'best_res': ...}``), so that file loads
strictly. Configuration of that file (``scripts/main_test_image.sh``) and of the STISR code that uses it (TextZoom's
and TPGSR's ``model/recognizer/recognizer_builder.py``, ``Aster_init``, ``parse_aster_data``):

- ``stn_head``: six conv3x3-BN-ReLU blocks (``stn_convnet``, max-pools between), ``stn_fc1`` (Linear 512 -> 512,
  BatchNorm1d, ReLU), ``stn_fc2`` (Linear 512 -> 40) on the input bilinearly resized to 32x64; no activation: 20
  control points in [0, 1]^2.
- ``tps``: thin-plate spline from those points to 20 fixed ones (margins 0.05), sampling a 32x100 image. Its four
  precomputed matrices are buffers and are saved in the file (``inverse_kernel``, ``padding_matrix``,
  ``target_coordinate_repr``, ``target_control_points``).
- ``encoder``: ``ResNet_ASTER`` with the 2-layer BiLSTM (``--with_lstm``: 512 -> 2 x 256): (B, 25, 512).
- ``decoder``: ``AttentionRecognitionHead``: one GRU step per character with additive attention
  (``decoder.decoder.{attention_unit.{sEmbed, xEmbed, wEmbed}, tgt_embedding, gru, fc}``), sDim = attDim = 512.
- classes (``get_vocabulary('ALLCASES_SYMBOLS')``, the same list as TextZoom's ``'all'``): 0..93 the 94 characters
  ``0-9a-zA-Z`` + punctuation, 94 = EOS, 95 = PADDING, 96 = UNKNOWN; the embedding has one more row, 97 = BOS.
- input: RGB 32x128 (TPGSR resizes bicubic to it) scaled to [-1, 1]; at most 100 steps.
- decoding: the STISR code calls ``beam_search`` with beam width 5 (``recognizer_builder.py``), so that is the default
  here, reproduced with its way of choosing among ended beams (see :func:`beam_search`); ``beam_width=1`` is greedy.
  Strings as TextZoom's ``get_str_list``: cut at EOS, UNKNOWN dropped, then only ASCII letters and digits, lowercase.

The TPS sampling (``F.grid_sample``) runs with ``align_corners=True``, the default of the PyTorch the file was
trained with (1.1; ``environment.yml``) and that TPGSR names (1.2), before it changed in 1.3 (TextZoom allows
1.0.1 to 1.5, so a published number may come from either); the STN's bilinear resize says ``align_corners=True``
itself. The resize to 32x128 is bicubic with ``align_corners=False``, as TPGSR's ``F.interpolate`` call.
"""

from __future__ import annotations

import itertools
import string

import torch
import torch.nn.functional as F
from torch import nn

from glyphsr.data.labels import CHARSET_ALL
from glyphsr.recognizers.checkpoints import strip_prefix
from glyphsr.recognizers.judges.common import OfficialJudge, check_images, resize

#: Token i is VOCABULARY[i]; the decoder's embedding has one more row for BOS.
VOCABULARY = (*CHARSET_ALL, "EOS", "PADDING", "UNKNOWN")
EOS, PADDING, UNKNOWN = 94, 95, 96
NUM_CLASSES = len(VOCABULARY)  # 97
INPUT_SIZE = (32, 128)
_ALNUM = frozenset(string.digits + string.ascii_letters)


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 1, 1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class STNHead(nn.Module):
    """(B, 3, 32, 64) -> control points (B, num_ctrlpoints, 2) in the unit square (x, y)."""

    def __init__(self, in_planes: int = 3, num_ctrlpoints: int = 20):
        super().__init__()
        self.num_ctrlpoints = num_ctrlpoints
        widths = [in_planes, 32, 64, 128, 256, 256, 256]
        layers: list[nn.Module] = []
        for i in range(6):  # 32x64 -> 16x32 -> 8x16 -> 4x8 -> 2x4 -> 1x2
            layers.append(_conv_bn_relu(widths[i], widths[i + 1]))
            if i < 5:
                layers.append(nn.MaxPool2d(2, 2))
        self.stn_convnet = nn.Sequential(*layers)
        self.stn_fc1 = nn.Sequential(nn.Linear(2 * 256, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True))
        self.stn_fc2 = nn.Linear(512, num_ctrlpoints * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.stn_fc1(self.stn_convnet(x).flatten(1))  # (B, 512)
        return self.stn_fc2(0.1 * feat).view(-1, self.num_ctrlpoints, 2)


def _tps_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """U(r) = r^2 log r = 0.5 r^2 log r^2 between points a (N, 2) and b (M, 2): (N, M), 0 where r = 0."""
    d2 = ((a[:, None] - b[None]) ** 2).sum(-1)
    return torch.nan_to_num(0.5 * d2 * torch.log(d2), nan=0.0)


class TPSSpatialTransformer(nn.Module):
    """Thin-plate-spline sampling: ``forward(images, source_points (B, N, 2))`` -> (B, C, H, W) of
    ``output_image_size``, where the fixed target points (top and bottom rows, ``margins`` inside) map to the
    source points."""

    def __init__(self, output_image_size: tuple[int, int] = (32, 100), num_control_points: int = 20,
                 margins: tuple[float, float] = (0.05, 0.05)):
        super().__init__()
        self.target_height, self.target_width = output_image_size
        n = num_control_points
        mx, my = margins
        xs = torch.linspace(mx, 1.0 - mx, n // 2, dtype=torch.float64)
        target = torch.cat([torch.stack([xs, torch.full_like(xs, my)], 1),
                            torch.stack([xs, torch.full_like(xs, 1.0 - my)], 1)])  # (N, 2): top row, bottom row
        kernel = torch.zeros(n + 3, n + 3, dtype=torch.float64)
        kernel[:n, :n] = _tps_kernel(target, target)
        kernel[:n, -3] = 1
        kernel[-3, :n] = 1
        kernel[:n, -2:] = target
        kernel[-2:, :n] = target.T
        h, w = output_image_size
        yx = torch.tensor(list(itertools.product(range(h), range(w))), dtype=torch.float64)  # (HW, 2) as (y, x)
        coords = torch.stack([yx[:, 1] / (w - 1), yx[:, 0] / (h - 1)], 1)  # (HW, 2) as (x, y) in [0, 1]
        repr_ = torch.cat([_tps_kernel(coords, target), torch.ones(h * w, 1, dtype=torch.float64), coords], 1)
        self.register_buffer("inverse_kernel", torch.linalg.inv(kernel).float())  # (N + 3, N + 3)
        self.register_buffer("padding_matrix", torch.zeros(3, 2))
        self.register_buffer("target_coordinate_repr", repr_.float())  # (HW, N + 3)
        self.register_buffer("target_control_points", target.float())  # (N, 2)

    def forward(self, images: torch.Tensor, source_points: torch.Tensor) -> torch.Tensor:
        b = source_points.shape[0]
        y = torch.cat([source_points, self.padding_matrix.expand(b, 3, 2)], 1)  # (B, N + 3, 2)
        mapping = torch.matmul(self.inverse_kernel, y)  # (B, N + 3, 2)
        source = torch.matmul(self.target_coordinate_repr, mapping)  # (B, HW, 2) in [0, 1]
        grid = source.view(b, self.target_height, self.target_width, 2).clamp(0, 1) * 2 - 1
        return F.grid_sample(images, grid, align_corners=True)


class AsterBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int | tuple[int, int] = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


class ResNetASTER(nn.Module):
    """ASTER's encoder (``ResNet_ASTER``): (B, 3, 32, 100) -> (B, 25, 512)."""

    def __init__(self, with_lstm: bool = True):
        super().__init__()
        self.layer0 = nn.Sequential(nn.Conv2d(3, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True))
        plan = [(32, 3, (2, 2)), (64, 4, (2, 2)), (128, 6, (2, 1)), (256, 6, (2, 1)), (512, 3, (2, 1))]
        inplanes = 32
        for i, (planes, blocks, stride) in enumerate(plan, 1):  # 16x50, 8x25, 4x25, 2x25, 1x25
            down = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
            rest = [AsterBlock(planes, planes) for _ in range(1, blocks)]
            setattr(self, f"layer{i}", nn.Sequential(AsterBlock(inplanes, planes, stride, down), *rest))
            inplanes = planes
        self.rnn = nn.LSTM(512, 256, bidirectional=True, num_layers=2, batch_first=True) if with_lstm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer0(x)
        for i in range(1, 6):
            x = getattr(self, f"layer{i}")(x)
        feats = x.squeeze(2).transpose(1, 2)  # (B, 512, 1, T) -> (B, T, 512)
        return feats if self.rnn is None else self.rnn(feats)[0]


class AttentionUnit(nn.Module):
    def __init__(self, s_dim: int, x_dim: int, att_dim: int):
        super().__init__()
        self.sEmbed = nn.Linear(s_dim, att_dim)
        self.xEmbed = nn.Linear(x_dim, att_dim)
        self.wEmbed = nn.Linear(att_dim, 1)

    def forward(self, x_proj: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """``x_proj`` = xEmbed(features) (B, T, att), ``state`` (1, B, s) -> attention weights (B, T)."""
        s_proj = self.sEmbed(state.squeeze(0)).unsqueeze(1)  # (B, 1, att)
        return F.softmax(self.wEmbed(torch.tanh(s_proj + x_proj)).squeeze(-1), dim=1)


class DecoderUnit(nn.Module):
    """One decoding step: previous token and GRU state -> class logits and the new state."""

    def __init__(self, s_dim: int, x_dim: int, y_dim: int, att_dim: int):
        super().__init__()
        self.attention_unit = AttentionUnit(s_dim, x_dim, att_dim)
        self.tgt_embedding = nn.Embedding(y_dim + 1, att_dim)  # the last row is BOS
        self.gru = nn.GRU(input_size=x_dim + att_dim, hidden_size=s_dim, batch_first=True)
        self.fc = nn.Linear(s_dim, y_dim)

    def forward(self, x: torch.Tensor, x_proj: torch.Tensor, state: torch.Tensor, y_prev: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (B, T, x_dim), ``x_proj`` its xEmbed (B, T, att), ``state`` (1, B, s), ``y_prev`` (B,) ->
        logits (B, y_dim), state (1, B, s)."""
        alpha = self.attention_unit(x_proj, state)  # (B, T)
        context = torch.bmm(alpha.unsqueeze(1), x).squeeze(1)  # (B, x_dim)
        inp = torch.cat([self.tgt_embedding(y_prev), context], 1).unsqueeze(1)  # (B, 1, att + x_dim)
        out, state = self.gru(inp, state)
        return self.fc(out.squeeze(1)), state


class AttentionRecognitionHead(nn.Module):
    """Attention decoder over encoder features (B, T, in_planes); see :meth:`greedy` and :func:`beam_search`."""

    def __init__(self, num_classes: int = NUM_CLASSES, in_planes: int = 512, s_dim: int = 512, att_dim: int = 512,
                 max_len_labels: int = 100):
        super().__init__()
        self.num_classes, self.s_dim, self.max_len_labels = num_classes, s_dim, max_len_labels
        self.decoder = DecoderUnit(s_dim, in_planes, num_classes, att_dim)

    def greedy(self, x: torch.Tensor, eos: int = EOS) -> torch.Tensor:
        """Arg-max decoding (aster.pytorch's ``sample``), stopped once every sequence has ended: (B, L) tokens."""
        b = x.shape[0]
        x_proj = self.decoder.attention_unit.xEmbed(x)
        state = x.new_zeros(1, b, self.s_dim)
        y = torch.full((b,), self.num_classes, dtype=torch.long, device=x.device)  # BOS
        tokens, ended = [], torch.zeros(b, dtype=torch.bool, device=x.device)
        for _ in range(self.max_len_labels):
            logits, state = self.decoder(x, x_proj, state, y)
            y = logits.argmax(1)
            tokens.append(y)
            ended |= y == eos
            if bool(ended.all()):
                break
        return torch.stack(tokens, 1)


def beam_search(head: AttentionRecognitionHead, x: torch.Tensor, beam_width: int = 5, eos: int = EOS
                ) -> torch.Tensor:
    """aster.pytorch's ``AttentionRecognitionHead.beam_search`` (after IBM's pytorch-seq2seq ``TopKDecoder``),
    batched: the best of ``beam_width`` beams over ``max_len_labels`` steps -> (B, L) tokens (read up to EOS).

    A beam that emits EOS stops growing. Which hypothesis wins follows the original's backtracking: it starts from
    the k best beams of the last step, and every ended hypothesis met on the way back (latest step first; within a
    step, higher beam index first) overwrites slot k-1, k-2, ..., wrapping round; the highest-scoring slot wins.
    So with more than k ended hypotheses, the earliest-ended ones are the candidates."""
    b, t_len, d = x.shape
    k, c, steps = beam_width, head.num_classes, head.max_len_labels
    dev = x.device
    xk = x.repeat_interleave(k, 0)  # (B k, T, d): each sample's beams together
    xk_proj = head.decoder.attention_unit.xEmbed(xk)
    state = x.new_zeros(1, b * k, head.s_dim)
    offset = torch.arange(b, device=dev)[:, None] * k  # (B, 1)
    scores = torch.full((b, k), float("-inf"), device=dev, dtype=x.dtype)
    scores[:, 0] = 0  # the first step expands one beam only
    y = torch.full((b * k,), c, dtype=torch.long, device=dev)  # BOS
    kept_scores, parents, symbols = [], [], []  # each (B, k) per step
    for _ in range(steps):
        logits, state = head.decoder(xk, xk_proj, state, y)
        total = scores.reshape(b * k, 1) + F.log_softmax(logits, dim=1)  # (B k, C)
        scores, idx = total.view(b, k * c).topk(k, dim=1)  # (B, k): index = beam * C + class
        parent = torch.div(idx, c, rounding_mode="floor")
        y = (idx % c).view(-1)
        state = state.index_select(1, (parent + offset).view(-1))
        kept_scores.append(scores.clone())
        parents.append(parent)
        symbols.append(y.view(b, k))
        scores = scores.masked_fill(y.view(b, k) == eos, float("-inf"))
    score_t, parent_t, symbol_t = torch.stack(kept_scores), torch.stack(parents), torch.stack(symbols)  # (L, B, k)

    # the slots: the k best final beams, then overwritten by ended hypotheses in backtracking order
    slot_score, slot_beam = score_t[-1].topk(k, dim=1)  # (B, k)
    slot_step = torch.full((b, k), steps - 1, dtype=torch.long, device=dev)
    ended = (symbol_t == eos).flip(0).flip(2).permute(1, 0, 2).reshape(b, steps * k)  # (B, L k) in backtrack order
    rank = ended.long().cumsum(1) - 1
    slot = torch.where(ended, k - 1 - rank % k, 0)
    position = torch.where(ended, torch.arange(steps * k, device=dev).expand(b, -1), -1)
    last = torch.full((b, k), -1, dtype=torch.long, device=dev).scatter_reduce(1, slot, position, "amax")
    hit = last >= 0  # (B, k): the slot's final content is the ended hypothesis at backtrack position `last`
    step_hit = steps - 1 - last.clamp(min=0) // k
    beam_hit = k - 1 - last.clamp(min=0) % k
    slot_step = torch.where(hit, step_hit, slot_step)
    slot_beam = torch.where(hit, beam_hit, slot_beam)
    slot_score = torch.where(hit, score_t[step_hit, torch.arange(b, device=dev)[:, None], beam_hit], slot_score)
    best = slot_score.topk(1, dim=1)[1]  # (B, 1)
    end, beam = slot_step.gather(1, best).squeeze(1), slot_beam.gather(1, best).squeeze(1)  # (B,)

    tokens = torch.full((b, steps), eos, dtype=torch.long, device=dev)
    for t in range(steps - 1, -1, -1):  # follow the parents back from each winner's last step
        on = t <= end
        tokens[:, t] = torch.where(on, symbol_t[t].gather(1, beam[:, None]).squeeze(1), eos)
        beam = torch.where(on, parent_t[t].gather(1, beam[:, None]).squeeze(1), beam)
    return tokens


class ASTER(nn.Module):
    """aster.pytorch's ``ModelBuilder`` (``ResNet_ASTER``, ``STN_ON``). ``forward(images (B, 3, H, W) in [-1, 1])``
    -> encoder features (B, 25, 512) of the rectified 32x100 image; decode them with the ``decoder``."""

    def __init__(self, *, num_classes: int = NUM_CLASSES, s_dim: int = 512, att_dim: int = 512,
                 max_len_labels: int = 100, with_lstm: bool = True, tps_inputsize: tuple[int, int] = (32, 64),
                 tps_outputsize: tuple[int, int] = (32, 100), num_control_points: int = 20,
                 tps_margins: tuple[float, float] = (0.05, 0.05)):
        super().__init__()
        self.tps_inputsize = tps_inputsize
        self.encoder = ResNetASTER(with_lstm)
        self.decoder = AttentionRecognitionHead(num_classes, 512, s_dim, att_dim, max_len_labels)
        self.tps = TPSSpatialTransformer(tps_outputsize, num_control_points, tps_margins)
        self.stn_head = STNHead(3, num_control_points)

    def rectify(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 3, 32, 100) by the predicted thin-plate spline."""
        small = F.interpolate(images, self.tps_inputsize, mode="bilinear", align_corners=True)
        return self.tps(images, self.stn_head(small))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.rectify(images))


def tokens_to_text(tokens: torch.Tensor) -> list[str]:
    """(B, L) tokens -> strings as TextZoom's ``get_str_list``: up to EOS, UNKNOWN dropped, the vocabulary's
    entries joined (so PADDING contributes its letters, as there), then ASCII letters and digits, lowercase."""
    out = []
    for row in tokens.tolist():
        row = row[:row.index(EOS)] if EOS in row else row
        text = "".join(VOCABULARY[i] for i in row if i != UNKNOWN)
        out.append("".join(ch for ch in text if ch in _ALNUM).lower())
    return out


def _aster_state(state: dict) -> dict:
    """aster.pytorch saves ``{'state_dict': ..., 'iters': ..., 'best_res': ...}``; a bare state dict also goes."""
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return strip_prefix(state)


class ASTERJudge(OfficialJudge):
    """The ASTER judge: ``recognize_tensor`` on RGB (B, 3, H, W) in [0, 1] -> B lowercase alphanumeric strings.
    ``beam_width`` (also an option of ``from_checkpoint``): 5 as the STISR code, 1 for greedy decoding."""

    name, title, weights_file = "aster", "ASTER", "demo.pth.tar of ayumiymk/aster.pytorch"
    architecture = ASTER
    transform = staticmethod(_aster_state)

    def __init__(self, model: ASTER, beam_width: int = 5):
        if beam_width < 1:
            raise ValueError(f"beam_width must be at least 1, got {beam_width}")
        super().__init__(model)
        self.beam_width = beam_width

    def decode(self, feats: torch.Tensor) -> torch.Tensor:
        """Encoder features (B, T, 512) -> tokens (B, L): beam search, or arg-max for ``beam_width`` 1."""
        if self.beam_width == 1:
            return self.model.decoder.greedy(feats)
        return beam_search(self.model.decoder, feats, self.beam_width)

    @torch.inference_mode()
    def recognize_tensor(self, images: torch.Tensor) -> list[str]:
        check_images(images)
        x = resize(images, INPUT_SIZE) * 2 - 1  # (B, 3, 32, 128) in [-1, 1]
        return tokens_to_text(self.decode(self.model(x)))
