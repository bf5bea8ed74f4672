"""Each task head: output shapes, a finite loss that back-propagates, and head swapping."""

from __future__ import annotations

import pytest
import torch

from workers.features import collate, encode
from workers.heads import TaskModel

SHAPES = {
    "toy_sentiment": lambda b: (b["input_ids"].shape[0], 2),
    "toy_sts": lambda b: (b["input_ids"].shape[0],),
    "toy_choice": lambda b: tuple(b["choice_mask"].shape),
    "toy_qa": lambda b: (*b["input_ids"].shape, 2),
    "toy_ner": lambda b: (*b["input_ids"].shape, 3),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_head_forward_shape_and_loss(name, tiny, toy_tasks):
    encoder, tokenizer = tiny
    task = toy_tasks[name]
    model = TaskModel(encoder, [task.spec])
    batch = collate(encode(task.train[:4], task.spec, tokenizer), tokenizer.pad_token_id)
    loss, logits = model(batch, name)
    assert tuple(logits.shape) == SHAPES[name](batch)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert model.encoder.embeddings.word_embeddings.weight.grad is not None


def test_unlabelled_batch_gives_no_loss(tiny, sentiment_task):
    encoder, tokenizer = tiny
    model = TaskModel(encoder, [sentiment_task.spec])
    batch = collate(encode(sentiment_task.train[:2], sentiment_task.spec, tokenizer))
    batch.pop("labels")
    loss, logits = model(batch, sentiment_task.name)
    assert loss is None and logits.shape == (2, 2)


def test_drop_heads_keeps_only_the_encoder(tiny, toy_tasks):
    encoder, _ = tiny
    model = TaskModel(encoder, [toy_tasks["toy_sts"].spec, toy_tasks["toy_ner"].spec])
    assert set(model.heads) == {"toy_sts", "toy_ner"}
    model.drop_heads()
    assert len(model.heads) == 0 and model.encoder is encoder
