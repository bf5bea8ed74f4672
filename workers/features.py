"""Turning typed examples into model features, and padding them into batches.

One function per task type; every feature is a plain dict of Python lists so it can be cached,
length-sorted and padded dynamically (to the longest in the batch, not to a fixed length).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from workers.data.schema import (
    ClassificationExample,
    Example,
    MultipleChoiceExample,
    QAExample,
    RegressionExample,
    TaggingExample,
    TaskSpec,
    TaskType,
)

IGNORE_INDEX = -100  # positions that carry no loss (non-first sub-words, padding)


@dataclass(frozen=True)
class FeatureConfig:
    max_length: int = 128  # classification, regression, multiple choice, tagging
    qa_max_length: int = 384
    doc_stride: int = 128  # tokens of overlap between windows of a long QA context


def encode(
    examples: Sequence[Example],
    spec: TaskSpec,
    tokenizer: PreTrainedTokenizerBase,
    config: FeatureConfig = FeatureConfig(),
) -> list[dict]:
    """Tokenise ``examples`` of one task; QA examples may yield several features each."""
    if not examples:
        return []
    encoder = _ENCODERS[spec.type]
    return encoder(examples, spec, tokenizer, config)


def _encode_sentences(examples, spec, tokenizer, config) -> list[dict]:
    texts = [ex.text for ex in examples]
    pairs = [ex.text_pair for ex in examples]
    has_pairs = any(p is not None for p in pairs)
    enc = tokenizer(
        texts,
        [p or "" for p in pairs] if has_pairs else None,
        truncation=True,
        max_length=config.max_length,
    )
    label_index = {label: i for i, label in enumerate(spec.labels)}
    features = []
    for i, ex in enumerate(examples):
        feature = _take(enc, i)
        feature["example_index"] = i
        if isinstance(ex, ClassificationExample) and ex.label is not None:
            feature["labels"] = label_index[ex.label]
        elif isinstance(ex, RegressionExample) and ex.label is not None:
            feature["labels"] = float(ex.label)
        features.append(feature)
    return features


def _encode_choices(examples, spec, tokenizer, config) -> list[dict]:
    features = []
    for i, ex in enumerate(examples):
        assert isinstance(ex, MultipleChoiceExample)
        # Segment A is the context and question, segment B one choice (as in BERT's SWAG setup).
        first = " ".join(part for part in (ex.context, ex.question) if part).strip()
        enc = tokenizer(
            [first] * len(ex.choices),
            list(ex.choices),
            truncation=True,
            max_length=config.max_length,
        )
        feature = {key: list(enc[key]) for key in enc}  # (choices, seq)
        feature["example_index"] = i
        if ex.label is not None:
            feature["labels"] = int(ex.label)
        features.append(feature)
    return features


def _encode_tags(examples, spec, tokenizer, config) -> list[dict]:
    tag_index = {tag: i for i, tag in enumerate(spec.labels)}
    enc = tokenizer(
        [list(ex.tokens) for ex in examples],
        is_split_into_words=True,
        truncation=True,
        max_length=config.max_length,
    )
    features = []
    for i, ex in enumerate(examples):
        assert isinstance(ex, TaggingExample)
        feature = _take(enc, i)
        word_ids = enc.word_ids(i)
        # Label the first sub-word of each word; later sub-words and specials carry no loss.
        first_subword = [
            w if w is not None and (j == 0 or word_ids[j - 1] != w) else None
            for j, w in enumerate(word_ids)
        ]
        feature["word_index"] = [-1 if w is None else w for w in first_subword]
        feature["example_index"] = i
        if ex.tags is not None:
            feature["labels"] = [
                IGNORE_INDEX if w is None else tag_index[ex.tags[w]] for w in first_subword
            ]
        features.append(feature)
    return features


def _encode_spans(examples, spec, tokenizer, config) -> list[dict]:
    enc = tokenizer(
        [ex.question for ex in examples],
        [ex.context for ex in examples],
        truncation="only_second",
        max_length=config.qa_max_length,
        stride=config.doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=False,
    )
    features = []
    for f, example_index in enumerate(enc["overflow_to_sample_mapping"]):
        ex = examples[example_index]
        assert isinstance(ex, QAExample)
        sequence_ids = enc.sequence_ids(f)
        offsets = [
            tuple(o) if sequence_ids[j] == 1 else None
            for j, o in enumerate(enc["offset_mapping"][f])
        ]
        feature = {
            k: enc[k][f] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc
        }
        feature["offsets"] = offsets
        feature["example_index"] = example_index
        feature["start_positions"], feature["end_positions"] = _answer_positions(ex, offsets)
        features.append(feature)
    return features


def _answer_positions(ex: QAExample, offsets: list) -> tuple[int, int]:
    """Token span of the first answer inside this window, or (0, 0) = CLS when it is not here."""
    if not ex.answers:
        return 0, 0
    answer = ex.answers[0]
    start_char, end_char = answer.start, answer.start + len(answer.text)
    context_tokens = [j for j, o in enumerate(offsets) if o is not None]
    if not context_tokens:
        return 0, 0
    first, last = context_tokens[0], context_tokens[-1]
    if offsets[first][0] > start_char or offsets[last][1] < end_char:
        return 0, 0
    start = next(j for j in context_tokens if offsets[j][1] > start_char)
    end = next(j for j in reversed(context_tokens) if offsets[j][0] < end_char)
    return start, max(start, end)


def _take(enc, i: int) -> dict:
    return {key: list(enc[key][i]) for key in enc}


_ENCODERS = {
    TaskType.CLASSIFICATION: _encode_sentences,
    TaskType.REGRESSION: _encode_sentences,
    TaskType.MULTIPLE_CHOICE: _encode_choices,
    TaskType.EXTRACTIVE_QA: _encode_spans,
    TaskType.SEQUENCE_LABELING: _encode_tags,
}

_PADDED_SEQUENCES = {"input_ids", "attention_mask", "token_type_ids", "labels", "word_index"}


def collate(features: Sequence[dict], pad_token_id: int = 0) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest sequence (and, for multiple choice, its most choices)."""
    is_choice = isinstance(features[0]["input_ids"][0], list)
    batch: dict[str, torch.Tensor] = {}
    if is_choice:
        return _collate_choices(features, pad_token_id)
    width = max(len(f["input_ids"]) for f in features)
    for key in features[0]:
        values = [f[key] for f in features]
        if key in _PADDED_SEQUENCES and isinstance(values[0], list):
            pad = _pad_value(key, pad_token_id)
            batch[key] = torch.tensor([v + [pad] * (width - len(v)) for v in values])
        elif key in ("labels", "start_positions", "end_positions", "example_index"):
            batch[key] = torch.tensor(values)
    return batch


def _collate_choices(features: Sequence[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    num_choices = max(len(f["input_ids"]) for f in features)
    width = max(len(seq) for f in features for seq in f["input_ids"])
    batch: dict[str, torch.Tensor] = {}
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        if key not in features[0]:
            continue
        pad = _pad_value(key, pad_token_id)
        rows = []
        for f in features:
            seqs = [s + [pad] * (width - len(s)) for s in f[key]]
            seqs += [[pad] * width] * (num_choices - len(seqs))
            rows.append(seqs)
        batch[key] = torch.tensor(rows)  # (batch, choices, seq)
    # Missing choices (tasks with a varying number) are masked out of the softmax.
    batch["choice_mask"] = torch.tensor(
        [[1] * len(f["input_ids"]) + [0] * (num_choices - len(f["input_ids"])) for f in features]
    )
    batch["example_index"] = torch.tensor([f["example_index"] for f in features])
    if "labels" in features[0]:
        batch["labels"] = torch.tensor([f["labels"] for f in features])
    return batch


def _pad_value(key: str, pad_token_id: int) -> int:
    if key == "input_ids":
        return pad_token_id
    if key == "labels":
        return IGNORE_INDEX
    if key == "word_index":
        return -1
    return 0


def feature_length(feature: dict) -> int:
    ids = feature["input_ids"]
    return max(len(s) for s in ids) * len(ids) if isinstance(ids[0], list) else len(ids)


def length_grouped_batches(
    features: Sequence[dict], batch_size: int, *, shuffle: bool, seed: int = 0
) -> Iterator[list[int]]:
    """Indices in batches of similar length, so dynamic padding wastes little.

    Training: shuffle, cut into mega-batches of 50 batches, sort each by length, then shuffle the
    batches (randomness kept, padding cut). Evaluation: sort everything by length.
    """
    order = list(range(len(features)))
    if not shuffle:
        order.sort(key=lambda i: feature_length(features[i]))
        yield from (order[i : i + batch_size] for i in range(0, len(order), batch_size))
        return
    rng = random.Random(seed)
    rng.shuffle(order)
    mega = batch_size * 50
    batches = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start : start + mega], key=lambda i: -feature_length(features[i]))
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    yield from batches
