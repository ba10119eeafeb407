"""Metrics for classifiers (from class scores) and segmenters (from binary masks).

Classification, binary (one class is "positive", by default "lesion"): accuracy, balanced
accuracy, ROC AUC of the positive class, sensitivity (recall of the positive class),
specificity (recall of the other), F1 of the positive class, confusion matrix.
More than two classes: the same names as macro averages (AUC one-vs-rest, sensitivity = mean
recall, specificity = mean per-class specificity, macro F1).
Segmentation: Dice and IoU, the mean over images and pooled over all pixels.

Plain numpy + scikit-learn; every value is a float (or None where it is undefined, such as
AUC on a test set with one class), so reports stay valid JSON.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def positive_index(class_names: Sequence[str], positive: str | None = None) -> int:
    """Which class counts as positive: `positive` if given, else "lesion", else the last class."""
    from synth.classifier.data import ClassifyError

    names = list(class_names)
    if positive is not None:
        if positive not in names:
            raise ClassifyError(f"--positive {positive!r} is not one of the classes {names}")
        return names.index(positive)
    return names.index("lesion") if "lesion" in names else len(names) - 1


def classification_metrics(probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                           positive: str | None = None) -> dict:
    """All classification metrics from class probabilities (N, C) and true class indices (N,)."""
    from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score,
                                 roc_auc_score, roc_curve)

    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels, np.int64)
    n_classes = len(class_names)
    pred = probs.argmax(axis=1)
    cm = confusion_matrix(labels, pred, labels=list(range(n_classes)))
    present = np.unique(labels)
    out: dict = {
        "n": int(len(labels)),
        "accuracy": float(accuracy_score(labels, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(labels, pred)) if len(labels) else None,
        "confusion_matrix": cm.tolist(),
        "class_names": list(class_names),
    }
    per_class_recall = [cm[k, k] / cm[k].sum() if cm[k].sum() else np.nan for k in range(n_classes)]
    per_class_spec = []
    for k in range(n_classes):
        neg = cm.sum() - cm[k].sum()
        tn = cm.sum() - cm[k].sum() - cm[:, k].sum() + cm[k, k]
        per_class_spec.append(tn / neg if neg else np.nan)
    if n_classes == 2:
        pos = positive_index(class_names, positive)
        out["positive_class"] = class_names[pos]
        out["sensitivity"] = _f(per_class_recall[pos])
        out["specificity"] = _f(per_class_recall[1 - pos])
        out["f1"] = float(f1_score(labels, pred, pos_label=pos, average="binary", zero_division=0))
        if len(present) == 2:
            score = probs[:, pos]
            out["auc"] = float(roc_auc_score(labels == pos, score))
            fpr, tpr, _ = roc_curve(labels == pos, score)
            out["roc"] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
        else:
            out["auc"] = None  # undefined with one class in the test set
    else:
        out["sensitivity"] = _f(np.nanmean(per_class_recall))
        out["specificity"] = _f(np.nanmean(per_class_spec))
        out["f1"] = float(f1_score(labels, pred, average="macro", labels=list(range(n_classes)), zero_division=0))
        if len(present) == n_classes:
            p = probs / probs.sum(axis=1, keepdims=True)
            out["auc"] = float(roc_auc_score(labels, p, multi_class="ovr", average="macro",
                                             labels=list(range(n_classes))))
        else:
            out["auc"] = None
        out["per_class_recall"] = {c: _f(r) for c, r in zip(class_names, per_class_recall)}
    return out


def _f(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


def per_image_overlap(pred: np.ndarray, truth: np.ndarray, eps: float = 1e-7) -> dict[str, np.ndarray]:
    """Per image of binary masks (N, H, W): predicted, true and shared pixel counts, Dice and IoU
    (an image whose truth and prediction are both empty scores 1: nothing to find, nothing found)."""
    pred = np.asarray(pred).astype(bool)
    truth = np.asarray(truth).astype(bool)
    inter = (pred & truth).reshape(len(pred), -1).sum(1).astype(np.float64)
    p = pred.reshape(len(pred), -1).sum(1).astype(np.float64)
    t = truth.reshape(len(truth), -1).sum(1).astype(np.float64)
    union = p + t - inter
    empty = (p + t) == 0
    return {"pred": p, "truth": t, "inter": inter, "union": union,
            "dice": np.where(empty, 1.0, 2 * inter / np.maximum(p + t, eps)),
            "iou": np.where(empty, 1.0, inter / np.maximum(union, eps))}


def segmentation_metrics(pred: np.ndarray, truth: np.ndarray, eps: float = 1e-7) -> dict:
    """Dice and IoU of binary masks (N, H, W): mean over images and pooled over all pixels; pixel
    precision and recall pooled over all pixels.

    An image whose truth and prediction are both empty scores 1 (nothing to find, nothing
    found); the mean over images that contain a lesion is reported separately.
    """
    o = per_image_overlap(pred, truth, eps)
    inter, p, t, union, dice, iou = o["inter"], o["pred"], o["truth"], o["union"], o["dice"], o["iou"]
    has = t > 0
    return {
        "n": int(len(pred)),
        "dice": float(dice.mean()) if len(pred) else None,
        "iou": float(iou.mean()) if len(pred) else None,
        "dice_lesion_images": float(dice[has].mean()) if has.any() else None,
        "iou_lesion_images": float(iou[has].mean()) if has.any() else None,
        "dice_pooled": float(2 * inter.sum() / max(p.sum() + t.sum(), eps)),
        "iou_pooled": float(inter.sum() / max(union.sum(), eps)),
        # Pooled over all pixels: of what was marked, how much is lesion (precision), and of the
        # lesion, how much was marked (recall). They tell over- from under-segmentation.
        "precision_pooled": float(inter.sum() / p.sum()) if p.sum() else None,
        "recall_pooled": float(inter.sum() / t.sum()) if t.sum() else None,
    }


def stats(values: list) -> dict:
    """Mean, sample standard deviation (n - 1; None for one value), min and max of the values
    that are defined, and the values themselves in seed order."""
    v = np.array([x for x in values if x is not None], np.float64)
    if not len(v):
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0, "values": list(values)}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else None,
            "min": float(v.min()), "max": float(v.max()), "n": int(len(v)), "values": list(values)}
