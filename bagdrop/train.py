"""One training loop for every chapter: seeded, device aware, with a progress bar."""
from __future__ import annotations

import os

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ._checks import non_negative_float, non_negative_int, positive_float, positive_int, torch_device
from .data import Split

__all__ = ["fit", "predict_proba", "predict", "progress_bar"]


def progress_bar(iterable=None, *, enabled: bool = True, **kwargs) -> tqdm:
    """A ``tqdm.auto`` progress bar, shown when ``enabled`` and the environment variable
    ``TQDM_DISABLE`` is unset or false (the book's build sets it, so rendered pages show
    no bars; an explicit ``disable=`` argument would otherwise override the variable)."""
    if iterable is not None and not hasattr(iterable, "__iter__"):
        raise TypeError(f"iterable must be an iterable or None, got {type(iterable).__name__}")
    silenced = os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no")
    return tqdm(iterable, disable=not enabled or silenced, leave=False, **kwargs)


def _check_model_and_x(model, x) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch tensor, got {type(x).__name__}")


@torch.no_grad()
def _eval_in_batches(model: nn.Module, x: torch.Tensor, batch_size: int, head) -> torch.Tensor:
    """``head(model(batch))`` over x in eval mode, concatenated; the mode is restored."""
    _check_model_and_x(model, x)
    batch_size = positive_int("batch_size", batch_size)
    was_training = model.training
    model.eval()
    try:
        return torch.cat([head(model(x[i:i + batch_size])) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def predict_proba(model: nn.Module, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Class probabilities of ``model`` in eval mode (weight scaling): x (N, ...) -> (N, C)."""
    return _eval_in_batches(model, x, batch_size, lambda logits: logits.softmax(-1))


def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Regression predictions of ``model`` in eval mode: x (N, ...) -> (N,)."""
    return _eval_in_batches(model, x, batch_size, lambda out: out.reshape(-1))


def _evaluate(model: nn.Module, split: Split) -> dict[str, float]:
    if split.is_classification:
        p_train, p_test = predict_proba(model, split.x_train), predict_proba(model, split.x_test)
        return {
            "train_error": (p_train.argmax(1) != split.y_train).float().mean().item(),
            "test_error": (p_test.argmax(1) != split.y_test).float().mean().item(),
            "test_nll": nn.functional.nll_loss(p_test.clamp_min(1e-12).log(), split.y_test).item(),
        }
    return {
        "train_mse": (predict(model, split.x_train) - split.y_train).pow(2).mean().item(),
        "test_mse": (predict(model, split.x_test) - split.y_test).pow(2).mean().item(),
    }


def fit(model: nn.Module, split: Split, epochs: int = 100, lr: float = 1e-2, batch_size: int = 100,
        weight_decay: float = 0.0, seed: int = 0, device: torch.device | str | None = None,
        progress: bool = True, eval_every: int = 1, train_index: torch.Tensor | None = None
        ) -> pd.DataFrame:
    """Train ``model`` in place with Adam on ``split`` and return its history.

    Classification (integer labels) minimises cross-entropy; regression (float
    targets, model output (N, 1)) minimises squared error. ``seed`` fixes the
    minibatch order and the dropout masks (the model's initialisation is fixed by
    the seed in force when it was built). ``train_index`` (M,) optionally selects, with
    repetition, the training examples to use, e.g. a bootstrap sample.

    Returns a DataFrame with one row per evaluation (every ``eval_every`` epochs and
    after the last): ``epoch``, ``step``, ``loss`` (mean minibatch loss since the last
    row) and ``train_error``, ``test_error``, ``test_nll`` (classification) or
    ``train_mse``, ``test_mse`` (regression), measured in eval mode on the full sets.
    The model is left in eval mode.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(split, Split):
        raise TypeError(f"split must be a bagdrop.data.Split, got {type(split).__name__}")
    epochs = positive_int("epochs", epochs)
    lr = positive_float("lr", lr)
    batch_size = positive_int("batch_size", batch_size)
    eval_every = positive_int("eval_every", eval_every)
    seed = non_negative_int("seed", seed)
    weight_decay = non_negative_float("weight_decay", weight_decay)
    params = list(model.parameters())
    if not params:
        raise ValueError("model must have parameters to train, it has none")
    device = params[0].device if device is None else torch_device("device", device)
    model.to(device)
    split = split.to(device)
    x, y = split.x_train, split.y_train
    if train_index is not None:
        train_index = torch.as_tensor(train_index, dtype=torch.int64)
        if train_index.dim() != 1 or len(train_index) == 0:
            raise ValueError("train_index must be a non-empty 1-D tensor of example indices")
        if train_index.min() < 0 or train_index.max() >= len(x):
            raise ValueError(f"train_index must hold indices in [0, {len(x)})")
        train_index = train_index.to(device)
        x, y = x[train_index], y[train_index]
    classify = split.is_classification
    loss_fn = nn.functional.cross_entropy if classify else (
        lambda out, target: nn.functional.mse_loss(out.reshape(-1), target))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    torch.manual_seed(seed)  # dropout masks
    order = torch.Generator().manual_seed(seed)
    rows, step, running, n_running = [], 0, 0.0, 0
    for epoch in progress_bar(range(1, epochs + 1), enabled=progress, desc="epochs"):
        model.train()
        perm = torch.randperm(len(x), generator=order).to(device)
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            loss = loss_fn(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += loss.item()
            n_running += 1
            step += 1
        if epoch % eval_every == 0 or epoch == epochs:
            rows.append({"epoch": epoch, "step": step, "loss": running / n_running, **_evaluate(model, split)})
            running, n_running = 0.0, 0
    model.eval()
    return pd.DataFrame(rows)
