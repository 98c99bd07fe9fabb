"""The two row formats, their label sets, and how a row becomes text for a model."""

from __future__ import annotations

from typing import Literal

Format = Literal["pairwise", "binary"]

# Class index i means LABELS[format][i]; predictions are submitted as these JSON values.
LABELS: dict[str, list] = {"pairwise": ["A", "B"], "binary": [False, True]}
FIELDS: dict[str, tuple[str, ...]] = {
    "pairwise": ("prompt", "first", "second"),
    "binary": ("question", "choice"),
}


def label_index(fmt: str, label) -> int:
    try:
        return LABELS[fmt].index(label)
    except ValueError:
        raise ValueError(
            f"label must be one of {LABELS[fmt]} for {fmt} rows, got {label!r}") from None


def candidate_texts(fmt: str, row: dict) -> list[str]:
    """Texts an encoder embeds for one row: one for a binary row, one per candidate for a pair."""
    if fmt == "binary":
        return [f"{row['question']}\n{row['choice']}"]
    return [f"{row['prompt']}\n{row['first']}", f"{row['prompt']}\n{row['second']}"]


def prompt_text(fmt: str, row: dict) -> str:
    """A plain prompt for a causal LM, answered by a label token (" A"/" B", " True"/" False")."""
    if fmt == "binary":
        return (f"{row['question']}\nAnswer: {row['choice']}\n"
                "Is this answer correct? (True or False)\nAnswer:")
    return (f"{row['prompt']}\nWhich response is better?\nA: {row['first']}\n"
            f"B: {row['second']}\nAnswer (A or B):")


LABEL_TOKENS: dict[str, list[str]] = {"pairwise": [" A", " B"], "binary": [" False", " True"]}
