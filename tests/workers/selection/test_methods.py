"""The method registry: every consumer derives its vocabulary from it."""

from __future__ import annotations

from typing import get_args

import pytest

from workers.selection.methods import (
    EVALUATION_ONLY,
    EVIDENCE_FREE_SERVED,
    REGISTRY,
    SERVED,
    choices_text,
    reads,
)
from workers.selection.rankers import build_ranker, embedding_methods_needed


def test_every_ranker_in_the_registry_builds_and_ranks(world) -> None:
    library, rows = world
    for name, method in REGISTRY.items():
        if method.evaluation_only:
            with pytest.raises(ValueError, match="evaluation-only"):
                build_ranker(name, library, rows)
            continue
        ranking = build_ranker(name, library, rows).rank("t00", ["t01", "t02", "t03"])
        assert sorted(ranking) == ["t01", "t02", "t03"], name


def test_the_service_and_settings_derive_from_it() -> None:
    from service.embeddings.schemas import Method
    from service.recommendations.schemas import RankMethod
    from service.settings import Settings

    assert get_args(RankMethod) == SERVED
    assert get_args(Method) == ("taskemb", "textemb", "semb")
    for name in ("best", *SERVED):
        assert Settings(_env_file=None, default_method=name).default_method == name
    with pytest.raises(ValueError):
        Settings(_env_file=None, default_method="oracle")  # a yardstick, not served
    assert Settings(_env_file=None).selection_methods.split(",") == list(REGISTRY)


def test_what_methods_read() -> None:
    assert reads("fused") == ("taskemb", "textemb")
    assert reads("taskemb:layer3.output") == ("taskemb",)
    assert reads("datasize") == ()
    assert embedding_methods_needed(["learned"]) == {"taskemb", "textemb", "semb"}
    assert "learned" not in EVIDENCE_FREE_SERVED and "learned" in SERVED
    assert EVALUATION_ONLY == ("random", "oracle")
    assert choices_text(("a", "b", "c")) == "a, b or c"
