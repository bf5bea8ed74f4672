"""The one registry of ranking methods: what each is called, what it reads, whether it learns
from measured transfers, whether the API serves it, and which ranker builds it.

The CLI's choices, the settings, the API's schemas and the evaluation all derive from
``REGISTRY``; a new method is one entry here plus its ranker in ``rankers.build_ranker``.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.similarity import EMBEDDING_METHODS, FUSED_METHODS, METHOD_CHOICES


@dataclass(frozen=True)
class RankingMethod:
    name: str
    kind: str  # which ranker builds it: "similarity", "centred", "size", "sized", "learned",
    # "expectation", "oracle"
    reads: tuple[str, ...]  # embedding methods it reads
    learns: bool  # fitted on measured transfers (evidence)
    served: bool  # the API ranks with it (``?method=``); the rest are evaluation yardsticks
    description: str

    @property
    def evaluation_only(self) -> bool:
        """Not a ranker at all: random's exact expectation, or the measured truth."""
        return self.kind in ("expectation", "oracle")


_SIMILARITY_TEXT = {
    "taskemb": "TaskEmb: cosine of the Fisher information per layer, fused over layers (RRF)",
    "textemb": "TextEmb: cosine of the mean token representation",
    "semb": "SEmb: cosine of the mean of each example's mean-pooled representation",
    "fused": "TaskEmb's and TextEmb's rankings fused (RRF)",
}

REGISTRY: dict[str, RankingMethod] = {
    m.name: m
    for m in (
        RankingMethod("random", "expectation", (), False, False, "no ranking: its expectation"),
        RankingMethod("datasize", "size", (), False, False, "the largest source first"),
        *(
            RankingMethod(
                name,
                "similarity",
                FUSED_METHODS if name == "fused" else (name,),
                False,
                True,
                _SIMILARITY_TEXT[name],
            )
            for name in METHOD_CHOICES
        ),
        RankingMethod(
            "sized",
            "sized",
            FUSED_METHODS,
            False,
            True,
            "the largest source first and the fused similarity ranking, fused (RRF): what "
            "ranks for a transfer model without measured transfers",
        ),
        RankingMethod(
            "taskemb_centred",
            "centred",
            ("taskemb",),
            False,
            False,
            "TaskEmb after log-scaling and centring on the library's mean",
        ),
        RankingMethod(
            "learned",
            "learned",
            EMBEDDING_METHODS,
            True,
            True,
            "a ridge model of measured gains over similarity, size, type and donor record, "
            "shrunk toward similarity where a source has little evidence",
        ),
        RankingMethod("oracle", "oracle", (), False, False, "the measured truth (a ceiling)"),
    )
}

METHODS = tuple(REGISTRY)
SIMILARITY_METHODS = tuple(n for n, m in REGISTRY.items() if m.kind == "similarity")
SERVED = tuple(n for n, m in REGISTRY.items() if m.served)
EVIDENCE_FREE_SERVED = tuple(n for n in SERVED if not REGISTRY[n].learns)
EVALUATION_ONLY = tuple(n for n, m in REGISTRY.items() if m.evaluation_only)
COMPONENT_PREFIX = "taskemb:"  # "taskemb:cls", "taskemb:layer3.output"; "taskemb:*" = all


def reads(method: str) -> tuple[str, ...]:
    """The embedding methods ``method`` reads (a TaskEmb component reads TaskEmb)."""
    if method.startswith(COMPONENT_PREFIX):
        return ("taskemb",)
    return REGISTRY[method].reads if method in REGISTRY else ()


def choices_text(names: tuple[str, ...] = SERVED) -> str:
    """``"a, b, c or d"`` for help texts and error messages."""
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)
