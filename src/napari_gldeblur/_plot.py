"""The Fine-tune widget's live plot: loss and validation PSNR against steps, painted with QPainter."""
from __future__ import annotations

import math
from typing import Any, Callable, Optional

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPalette, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget


def legend_label(width_of: Callable[[str], float], room: float) -> str:
    """The longest name of the loss curve that fits in ``room`` pixels, so it never runs into the PSNR legend."""
    return next((t for t in ("training loss (log scale)", "loss (log scale)") if width_of(t) <= room), "loss (log)")


class TrainingPlot(QWidget):
    """Live plot: smoothed training loss (log scale, left axis) and validation PSNR (dB, right axis) per step."""

    LOSS_COLOR = QColor("#4fc3f7")
    PSNR_COLOR = QColor("#ffb74d")

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setMinimumHeight(170)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.clear()

    def clear(self, total: int = 1, phases: int = 1) -> None:
        """Forget the curves; ``total`` steps per phase times ``phases`` is the x range."""
        self.loss: list[tuple[int, float]] = []
        self.psnr: list[tuple[int, float]] = []
        self.start: Optional[float] = None  # val PSNR of the starting model: the level a fine-tune must beat
        self.total, self.phases = max(total, 1), max(phases, 1)
        self.update()

    def add(self, x: int, loss: float, psnr: Optional[float]) -> None:
        """One training step: x is the step over all phases; psnr only on validation steps."""
        if math.isfinite(loss) and loss > 0:
            self.loss.append((x, loss))
        if psnr is not None and math.isfinite(psnr):
            self.psnr.append((x, psnr))
        self.update()

    def paintEvent(self, event: Any) -> None:  # noqa: N802 (Qt API)
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        fg = self.palette().color(QPalette.WindowText)
        fm = p.fontMetrics()
        left, right = fm.horizontalAdvance("0.00000") + 8, fm.horizontalAdvance("00.0") + 8  # axis labels fit
        area = QRectF(self.rect()).adjusted(left, fm.height() + 10, -right, -fm.height() - 8)
        p.setPen(QPen(fg, 1))
        p.drawRect(area)
        legend_y = fm.ascent() + 3
        label = "val PSNR (dB)"
        loss_label = legend_label(fm.horizontalAdvance, area.width() - fm.horizontalAdvance(label + "  "))
        p.setPen(self.LOSS_COLOR)
        p.drawText(int(area.left()), legend_y, loss_label)
        p.setPen(self.PSNR_COLOR)
        p.drawText(int(area.right()) - fm.horizontalAdvance(label), legend_y, label)
        x_max = self.total * self.phases
        p.setPen(fg)
        p.drawText(int(area.left()), int(area.bottom()) + fm.ascent() + 4, "0")
        end = f"step {x_max}"
        p.drawText(int(area.right()) - fm.horizontalAdvance(end), int(area.bottom()) + fm.ascent() + 4, end)
        if not self.loss and not self.psnr:
            p.drawText(area, Qt.AlignCenter, "The loss and validation PSNR\nappear here during training.")
            return
        dash = QPen(fg, 1, Qt.DashLine)
        for k in range(1, self.phases):  # phase boundaries
            x = area.left() + area.width() * k / self.phases
            p.setPen(dash)
            p.drawLine(QPointF(x, area.top()), QPointF(x, area.bottom()))

        def series(points: list[tuple[int, float]], transform: Callable[[float], float], color: QColor, left: bool,
                   fmt: str, marker: bool, reference: Optional[float] = None) -> None:
            values = [transform(v) for _, v in points]
            lo, hi = min(values + ([reference] if reference is not None else [])), max(values + ([reference] if reference is not None else []))
            if hi - lo < 1e-9:
                lo, hi = lo - 0.5, hi + 0.5
            pad = (hi - lo) * 0.08
            lo, hi = lo - pad, hi + pad
            poly = QPolygonF([QPointF(area.left() + area.width() * x / x_max,
                                      area.bottom() - area.height() * (v - lo) / (hi - lo))
                              for (x, _), v in zip(points, values)])
            p.setPen(QPen(color, 1.6))
            p.drawPolyline(poly)
            if marker:
                p.setBrush(color)
                for pt in poly:
                    p.drawEllipse(pt, 2.5, 2.5)
            if reference is not None:  # dashed: the starting model's level, labelled
                y = area.bottom() - area.height() * (reference - lo) / (hi - lo)
                p.setPen(QPen(color, 1, Qt.DashLine))
                p.drawLine(QPointF(area.left(), y), QPointF(area.right(), y))
                p.drawText(int(area.left()) + 4, int(y) - 3, f"start model {reference:.2f} dB")
                p.setPen(QPen(color, 1.6))
            for v, y in ((hi, area.top() + fm.ascent()), (lo, area.bottom() - 2)):
                text = fmt.format(10**v if transform is math.log10 else v)
                x = area.left() - fm.horizontalAdvance(text) - 4 if left else area.right() + 4
                p.drawText(int(x), int(y), text)

        if self.loss:
            series(self.loss, math.log10, self.LOSS_COLOR, True, "{:.2g}", False)
        if self.psnr:
            series(self.psnr, float, self.PSNR_COLOR, False, "{:.1f}", True, self.start)
