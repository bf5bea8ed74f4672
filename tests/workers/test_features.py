"""Tokenised features per task type, dynamic padding and length-grouped batches."""

from __future__ import annotations

from workers.data.schema import Answer, Metric, QAExample, TaskSpec, TaskType
from workers.features import (
    IGNORE_INDEX,
    FeatureConfig,
    collate,
    encode,
    length_grouped_batches,
)


def test_sentence_pairs_use_two_segments(tiny, toy_tasks):
    _, tokenizer = tiny
    task = toy_tasks["toy_sts"]
    features = encode(task.train, task.spec, tokenizer)
    assert len(features) == len(task.train)
    assert set(features[0]["token_type_ids"]) == {0, 1}
    assert features[3]["labels"] == 3.0


def test_tagging_labels_only_first_subword(tiny):
    _, tokenizer = tiny
    spec = TaskSpec("t", TaskType.SEQUENCE_LABELING, Metric.TOKEN_ACCURACY, ("O", "X"))
    from workers.data.schema import TaggingExample

    example = TaggingExample("a", ("unbelievably", "ok"), ("X", "O"))
    (feature,) = encode([example], spec, tokenizer)
    words = feature["word_index"]
    labelled = [label for label in feature["labels"] if label != IGNORE_INDEX]
    assert labelled == [1, 0]  # one label per word, whatever the sub-word count
    assert words.count(0) == 1 and words.count(1) == 1


def test_long_qa_context_is_split_into_windows_that_map_back_to_text(tiny):
    _, tokenizer = tiny
    context = "filler words here. " * 60 + "The answer is Paris. " + "more filler text. " * 60
    start = context.index("Paris")
    example = QAExample("q", context, "Where?", (Answer("Paris", start),))
    spec = TaskSpec("qa", TaskType.EXTRACTIVE_QA, Metric.SQUAD)
    features = encode([example], spec, tokenizer, FeatureConfig(qa_max_length=64, doc_stride=16))
    assert len(features) > 5
    hits = [f for f in features if f["start_positions"] > 0]
    assert hits, "some window must contain the answer"
    for f in hits:
        s, e = f["start_positions"], f["end_positions"]
        assert context[f["offsets"][s][0] : f["offsets"][e][1]] == "Paris"
    assert all(f["start_positions"] == 0 for f in features if f not in hits)


def test_collate_pads_to_longest_in_batch_not_max_length(tiny, sentiment_task):
    _, tokenizer = tiny
    features = encode(sentiment_task.train, sentiment_task.spec, tokenizer)
    batch = collate(features[:4], tokenizer.pad_token_id)
    longest = max(len(f["input_ids"]) for f in features[:4])
    assert batch["input_ids"].shape == (4, longest) and longest < 128
    assert batch["attention_mask"].sum() == sum(len(f["input_ids"]) for f in features[:4])


def test_multiple_choice_masks_missing_choices(tiny, toy_tasks):
    _, tokenizer = tiny
    task = toy_tasks["toy_choice"]  # rows alternate between 2 and 3 choices
    batch = collate(encode(task.train[:2], task.spec, tokenizer), tokenizer.pad_token_id)
    assert batch["input_ids"].shape[:2] == (2, 3)
    assert batch["choice_mask"].tolist() == [[1, 1, 0], [1, 1, 1]]


def test_length_grouped_batches_cover_every_feature_once(tiny, sentiment_task):
    _, tokenizer = tiny
    features = encode(sentiment_task.train, sentiment_task.spec, tokenizer)
    for shuffle in (True, False):
        batches = list(length_grouped_batches(features, 5, shuffle=shuffle, seed=3))
        assert sorted(i for b in batches for i in b) == list(range(len(features)))
    ordered = list(length_grouped_batches(features, 5, shuffle=False))
    lengths = [len(features[i]["input_ids"]) for b in ordered for i in b]
    assert lengths == sorted(lengths)
