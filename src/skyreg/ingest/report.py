"""What an ingest did, for the summary the CLI prints and for callers to inspect."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class KindCount:
    """Rows of one kind: how many the input held and how many were new."""

    in_input: int = 0
    inserted: int = 0

    @property
    def already_present(self) -> int:
        return self.in_input - self.inserted


@dataclass
class IngestReport:
    """Counts per kind (instrument, detector, visit, ccd, skymap, tract, patch) and timings."""

    source: str
    counts: dict[str, KindCount] = field(default_factory=dict)
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    #: A check only: ``inserted`` counts what a load would insert, and nothing was written.
    checked_only: bool = False

    @property
    def changed(self) -> bool:
        return not self.checked_only and any(count.inserted for count in self.counts.values())

    def ccds_per_second(self) -> float:
        ccds = self.counts.get("ccd", KindCount()).in_input
        return ccds / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        """A human-readable summary, one line per kind and a total."""
        new = "would be new" if self.checked_only else "new"
        out = [f"{'kind':<12}{'in input':>12}{new:>14}{'already there':>16}"]
        for kind, count in self.counts.items():
            out.append(f"{kind:<12}{count.in_input:>12,}{count.inserted:>14,}"
                       f"{count.already_present:>16,}")
        if self.checked_only:
            out.append(f"checked {self.source} in {self.seconds:.1f} s: no problems; "
                       "nothing was written")
            return out
        rate = self.ccds_per_second()
        timing = f"{self.seconds:.1f} s"
        if rate:
            timing += f" ({rate:,.0f} CCDs/s)"
        out.append(("loaded " if self.changed else "nothing new; registry unchanged ")
                   + f"from {self.source} in {timing}")
        return out

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "checked_only": self.checked_only,
            "seconds": round(self.seconds, 3),
            "ccds_per_second": round(self.ccds_per_second(), 1),
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
            "counts": {k: {"in_input": c.in_input, "inserted": c.inserted}
                       for k, c in self.counts.items()},
        }
