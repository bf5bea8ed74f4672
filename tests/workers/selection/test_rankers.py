"""Ranking methods: baselines, similarity, and the learned ranker's fit / update / persistence."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from workers.selection.rankers import (
    PRIOR_CHOICES,
    DataSizeRanker,
    LearnedConfig,
    LearnedRanker,
    Library,
    build_ranker,
    embedding_methods_needed,
    expand_methods,
)
from workers.selection.results import TransferRow


def test_datasize_puts_the_largest_source_first(world) -> None:
    library, _ = world
    ranking = DataSizeRanker(library).rank("t00", ["t01", "t02", "t03"])
    sizes = [library.sizes[s] for s in ranking]
    assert sizes == sorted(sizes, reverse=True)


def test_sized_fuses_the_largest_first_and_the_similarity_rankings(world) -> None:
    """RRF of the two: a source first by both leads, and one last by both trails."""
    library, _ = world
    candidates = [f"t{i:02d}" for i in range(1, 9)]
    by_similarity = build_ranker("fused", library).rank("t00", candidates)
    sized = dataclasses.replace(library, sizes=dict(library.sizes))
    # The most similar source made the largest and the least similar the smallest
    sized.sizes.update({by_similarity[0]: 10**6, by_similarity[-1]: 1})
    ranking = build_ranker("sized", sized).rank("t00", candidates)
    assert sorted(ranking) == candidates
    assert ranking[0] == by_similarity[0] and ranking[-1] == by_similarity[-1]
    by_size = DataSizeRanker(sized).rank("t00", candidates)
    scores = {c: 1 / (61 + by_size.index(c)) + 1 / (61 + by_similarity.index(c)) for c in ranking}
    assert ranking == sorted(candidates, key=lambda c: (-scores[c], c))
    assert ranking not in (by_size, by_similarity)  # neither ranking alone


def test_similarity_rankers_order_every_candidate_once(world) -> None:
    library, _ = world
    candidates = ["t01", "t02", "t03", "t04"]
    for method in ("taskemb", "textemb", "semb", "fused", "taskemb:cls", "taskemb:layer0.output"):
        ranking = build_ranker(method, library).rank("t00", candidates)
        assert sorted(ranking) == candidates, method


def test_component_ranker_sorts_by_that_components_cosine(world) -> None:
    library, _ = world
    ranking = build_ranker("taskemb:cls", library).rank("t00", ["t01", "t02", "t03", "t04"])
    sims = [library.similarities("t00", s)["taskemb.cls"] for s in ranking]
    assert sims == sorted(sims, reverse=True)


def test_method_names_expand_and_say_which_embeddings_they_need(world) -> None:
    library, _ = world
    assert expand_methods(["datasize", "taskemb:*"], library) == [
        "datasize",
        "taskemb:layer0.output",
        "taskemb:cls",
    ]
    assert embedding_methods_needed(["datasize", "fused"]) == {"taskemb", "textemb"}
    assert embedding_methods_needed(["taskemb:cls"]) == {"taskemb"}
    with pytest.raises(ValueError, match="unknown method"):
        expand_methods(["nope"], library)


def test_learned_ranker_learns_the_rule_behind_the_gains(world) -> None:
    library, rows = world
    config = LearnedConfig(per_component=False)
    ranker = LearnedRanker(library, config).fit(r for r in rows if r.target != "t00")
    coef = ranker.coefficients()
    # gains grow with similarity and with the source's quality (seen as its donor record)
    assert coef["donor_percentile"] > 0
    assert coef["sim:textemb.*"] > 0
    assert abs(coef["log_size"]) < coef["donor_percentile"]  # size is noise in this world
    assert [k for k in coef if k.startswith("sim:")] == [
        "sim:semb.*",
        "sim:taskemb.*",
        "sim:textemb.*",
    ]


def test_a_feature_per_embedding_component_by_default(world) -> None:
    library, rows = world
    ranker = LearnedRanker(library).fit(r for r in rows if r.target != "t00")
    sims = [k for k in ranker.coefficients() if k.startswith("sim:")]
    assert sims == [
        "sim:semb.mean",
        "sim:taskemb.cls",
        "sim:taskemb.layer0.output",
        "sim:textemb.mean",
    ]


def test_learned_ranker_leans_on_similarity_where_a_source_is_unmeasured(world) -> None:
    library, rows = world
    # t11 is never measured as a source: its model weight is 0, so its place is the prior's
    config = LearnedConfig(shrinkage=3.0, other_type_share=1.0)
    evidence = [r for r in rows if "t11" not in (r.source, r.target)]
    ranker = LearnedRanker(library, config).fit(evidence)
    scores = ranker.scores("t00", [f"t{i:02d}" for i in range(1, 12)])
    assert scores["t11"]["weight"] == 0.0
    assert scores["t11"]["score"] == scores["t11"]["prior"]
    n = scores["t01"]["evidence"]
    assert n > 0 and scores["t01"]["weight"] == n / (n + 3.0)


def test_weights_stay_nonnegative_where_a_feature_misleads(world) -> None:
    library, rows = world
    # Rewrite history so that the smaller a source, the more it helps.
    against_size = [dataclasses.replace(r, gain=-math.log(library.sizes[r.source])) for r in rows]
    assert LearnedRanker(library).fit(against_size).coefficients()["log_size"] == 0.0
    free = LearnedRanker(library, LearnedConfig(nonnegative=False)).fit(against_size)
    assert free.coefficients()["log_size"] < 0


def test_a_record_on_other_types_counts_by_its_share(world) -> None:
    library, rows = world
    evidence = [r for r in rows if r.target != "t00"]
    for share in (1.0, 0.3, 0.0):
        config = LearnedConfig(shrinkage=3.0, other_type_share=share)
        scored = LearnedRanker(library, config).fit(evidence).scores("t00", ["t01", "t02"])["t01"]
        # t01 was measured on the 10 other targets; t03, t06 and t09 have t00's type
        assert scored["evidence"] == 10 and scored["evidence_same_type"] == 3
        n = 3 + share * 7
        assert scored["weight"] == pytest.approx(n / (n + 3.0))


def test_a_target_whose_sources_differ_by_seed_noise_alone_does_not_move_the_fit(world) -> None:
    library, rows = world
    kept = [r for r in rows if r.target != "t05"]
    sources = sorted({r.source for r in rows if r.target == "t05"})

    def flat(order: list[str]) -> list[TransferRow]:
        """t05 measured again: seeds ±10 apart, sources ordered by ``order`` by a hair."""
        offsets = {s: 0.01 * i for i, s in enumerate(order)}
        return [
            TransferRow(s, "t05", seed, 60 + offsets[s] + d, 60, offsets[s] + d, "accuracy")
            for s in sources
            for seed, d in enumerate((10.0, -10.0))
        ]

    one, other = kept + flat(sources), kept + flat(sources[::-1])
    fitted = LearnedRanker(library).fit(one)
    assert fitted.target_weights["t05"] == 0.0 and fitted.target_weights["t00"] > 0.9
    assert fitted.coefficients() == LearnedRanker(library).fit(other).coefficients()
    alike = LearnedConfig(weigh_by_reliability=False)
    assert (
        LearnedRanker(library, alike).fit(one).coefficients()
        != LearnedRanker(library, alike).fit(other).coefficients()
    )


def test_learned_ranker_falls_back_to_the_prior_with_too_few_targets(world) -> None:
    library, rows = world
    few = [r for r in rows if r.target in ("t01", "t02")]
    ranker = LearnedRanker(library, LearnedConfig(prior="semb")).fit(few)
    candidates = ["t03", "t04", "t05", "t06"]
    assert ranker.model is None
    assert ranker.rank("t00", candidates) == build_ranker("semb", library).rank("t00", candidates)


def test_learned_ranker_updates_with_new_evidence_and_round_trips_json(world, tmp_path) -> None:
    library, rows = world
    first = [r for r in rows if r.target in ("t01", "t02", "t03")]
    later = [r for r in rows if r.target in ("t04", "t05", "t06", "t07")]
    ranker = LearnedRanker(library).fit(first)
    before = ranker.coefficients()
    ranker.update(later)
    assert sorted(ranker.evidence) == ["t01", "t02", "t03", "t04", "t05", "t06", "t07"]
    assert ranker.coefficients() != before
    assert ranker.coefficients() == LearnedRanker(library).fit(first + later).coefficients()

    loaded = LearnedRanker.load(ranker.save(tmp_path / "ranker.json"), library)
    candidates = [f"t{i:02d}" for i in range(1, 12)]
    assert loaded.rank("t00", candidates) == ranker.rank("t00", candidates)
    assert loaded.coefficients() == pytest.approx(ranker.coefficients())


def test_update_replaces_a_remeasured_pair(world) -> None:
    library, rows = world
    ranker = LearnedRanker(library).fit(rows)
    again = TransferRow("t01", "t02", 0, 99.0, 60.0, 39.0, "accuracy")
    ranker.update([again])
    assert ranker.evidence["t02"]["t01"].gain == 39.0


def test_auto_prior_is_whichever_similarity_did_best_on_the_measured_targets(world) -> None:
    library, rows = world
    assert LearnedRanker(library).fit(rows).prior in ("semb", "textemb", "taskemb", "fused")
    # Rewrite history so that the TaskEmb CLS cosine alone decides: the prior follows it.
    by_taskemb = [
        dataclasses.replace(r, gain=library.similarities(r.target, r.source)["taskemb.cls"])
        for r in rows
    ]
    assert LearnedRanker(library).fit(by_taskemb).prior == "taskemb"
    bare = Library(library.specs, library.sizes)  # no embeddings: only size can rank
    assert LearnedRanker(bare).fit(rows).prior == "datasize"


def test_auto_prior_keeps_the_default_unless_a_rival_is_clearly_better(world) -> None:
    library, rows = world
    # t00's history follows TaskEmb's CLS cosine; every other target's is a fixed random draw
    draws = np.random.default_rng(2).normal(size=(12, 12))

    def gain(r) -> float:
        if r.target == "t00":
            return library.similarities(r.target, r.source)["taskemb.cls"]
        return float(draws[int(r.target[1:]), int(r.source[1:])])

    ranker = LearnedRanker(library).fit([dataclasses.replace(r, gain=gain(r)) for r in rows])
    targets = list(ranker.evidence)
    places = {m: ranker._best_source_places(m, targets).mean() for m in PRIOR_CHOICES}
    assert min(places, key=places.get) == "taskemb"  # the lowest mean place alone would pick it
    assert ranker.prior == "fused"  # but one target's worth of advantage is within the noise


def test_donor_record_leaves_the_target_out_exactly(world) -> None:
    from workers.selection.rankers import _DonorStats
    from workers.selection.results import outcomes

    library, rows = world
    evidence = outcomes(rows)
    weights = {t: 0.1 + 0.08 * i for i, t in enumerate(sorted(evidence))}
    full = _DonorStats(evidence, library, weights)
    for held_out in ("t00", "t05"):
        others = {t: m for t, m in evidence.items() if t != held_out}
        direct = _DonorStats(others, library, weights).without("nothing")
        view = full.without(held_out)
        target_type = library.specs[held_out].type
        for source in ("t01", "t02", held_out):
            assert view.count(source) == direct.count(source)
            assert view.mean_percentile(source) == pytest.approx(direct.mean_percentile(source))
            assert view.win_rate(source) == pytest.approx(direct.win_rate(source))
            assert view.mean_percentile(source, target_type) == pytest.approx(
                direct.mean_percentile(source, target_type)
            )


def test_ranking_needs_no_torch_and_knows_every_embedding_method() -> None:
    import subprocess
    import sys

    from workers.embeddings import METHODS
    from workers.selection.rankers import EMBEDDING_METHODS

    assert EMBEDDING_METHODS == METHODS
    code = "import sys, workers.research.evaluate; print('torch' in sys.modules)"
    repo = Path(__file__).resolve().parents[3]
    found = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True)
    assert found.stdout.strip() == "False", found.stderr


def test_centred_taskemb_sees_past_the_dimensions_every_task_shares() -> None:
    """Fisher-like vectors: one huge dimension common to all tasks, then a task-specific
    pattern. Raw cosines are ~1 everywhere; after log + centring the twin of the target wins."""
    import numpy as np

    from workers.data.schema import Metric, TaskSpec, TaskType
    from workers.embeddings import TaskEmbedding
    from workers.encoder import EncoderRef
    from workers.selection.rankers import CentredTaskEmbRanker, Library, SimilarityRanker

    rng = np.random.default_rng(0)
    patterns = {"a": rng.random(16), "b": rng.random(16), "c": rng.random(16)}
    patterns["target"] = patterns["b"] + 0.05 * rng.random(16)  # b's twin
    ref = EncoderRef("fake", "0", "fake")
    embeddings = {}
    for name, pattern in patterns.items():
        fisher = np.concatenate([[1e4 * (1 + 0.01 * rng.random())], 1e-3 * pattern])
        other = np.concatenate([[5e3, 2e3], 1e-4 * pattern[::-1]])  # another layer, same story
        components = {"layer0.output": fisher, "cls": other}
        embeddings[name] = {"taskemb": TaskEmbedding(name, "taskemb", ref, components, 10, {})}
    spec = TaskSpec("x", TaskType.CLASSIFICATION, Metric.ACCURACY, ("a", "b"))
    library = Library({n: spec for n in patterns}, {n: 100 for n in patterns}, embeddings)
    raw = library.similarities("target", "a")["taskemb.layer0.output"]
    assert raw > 0.999  # the shared dimension decides the raw cosine
    centred = CentredTaskEmbRanker(library).rank("target", ["a", "b", "c"])
    assert centred[0] == "b"
    assert SimilarityRanker(library, "taskemb").rank("target", ["a", "b", "c"])  # still ranks
