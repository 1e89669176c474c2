"""Paper tables: the runs that make each one, and ours printed beside the published numbers.

A table is a sweep of one experiment config (``configs/experiment/``) over losses, batch sizes
and seeds. Its runs live in one folder, one run directory per (loss, batch, seed), so a table
is launched once, resumed where runs are missing or unfinished, and collected at any time.
The published numbers are data, one YAML file per source in ``docs/published/`` (outside
``configs/``, which Hydra would read as config options); :func:`load_published` reads them.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from selfsup.run_dir import load_runs

LOSS_NAMES = {"ntxent": "SimCLR (NT-Xent)", "dcl": "DCL", "dclw": "DCLW"}
PUBLISHED = Path(__file__).resolve().parents[2] / "docs" / "published"


@dataclass(frozen=True)
class Published:
    """One source's numbers: top-1 (%) per (loss, batch size), and where they are printed."""

    source: str
    data: str
    protocol: str
    epochs: int
    top1: dict[tuple[str, int], float]
    reference: str = ""  # the document (and version) the numbers are copied from


def load_published(name: str, folder: Path = PUBLISHED) -> Published:
    """``folder/NAME.yaml``: ``source``, ``reference``, ``data``, ``protocol``, ``epochs`` and
    ``top1`` as loss -> batch size -> top-1 (%)."""
    raw = yaml.safe_load((folder / f"{name}.yaml").read_text())
    return Published(
        source=str(raw["source"]),
        data=str(raw["data"]),
        protocol=str(raw["protocol"]),
        epochs=int(raw["epochs"]),
        top1={(str(loss), int(b)): float(v) for loss, by in raw["top1"].items() for b, v in by.items()},
        reference=str(raw.get("reference", "")),
    )


@dataclass(frozen=True)
class Table:
    """A reproduction: the experiment, the sweep, the metric compared, the published rows."""

    name: str
    experiment: str
    metric: str  # a key of results.json's metrics: linear_top1 or knn_top1
    protocol: str
    losses: tuple[str, ...]
    batches: tuple[int, ...]
    seeds: tuple[int, ...]
    published: Published
    budget: str  # how our runs differ from the source's, stated in the table

    def runs(self) -> list[tuple[str, int, int]]:
        """(loss, batch, seed) of every run, seed-major: a partial table has whole seeds."""
        return [(loss, b, s) for s in self.seeds for b in self.batches for loss in self.losses]


DCL_REPO = load_published("dcl_repo_cifar10")  # also lists batch 64 and 128
LIGHTLY = load_published("lightly_cifar10_knn")

TABLES = {
    t.name: t
    for t in (
        Table(
            name="dcl_batch_reduced",
            experiment="dcl_batch_reduced",
            metric="linear_top1",
            protocol="linear probe (L-BFGS logistic regression, frozen backbone)",
            losses=("ntxent", "dcl", "dclw"),
            batches=(32, 128, 512),
            seeds=(0, 1, 2),
            published=DCL_REPO,
            budget="Fashion-MNIST, small CNN, 8 epochs of 5 % of the batches (20–24k images seen), 2 CPU cores; "
            "the source: CIFAR-10, ResNet-18, 100 epochs",
        ),
        Table(
            name="dcl_batch_cifar10",
            experiment="dcl_batch_cifar10",
            metric="linear_top1",
            protocol="linear probe (L-BFGS logistic regression, frozen backbone)",
            losses=("ntxent", "dcl", "dclw"),
            batches=(32, 64, 128, 256),
            seeds=(0,),
            published=DCL_REPO,
            budget="CIFAR-10, ResNet-18, 100 epochs, one GPU; the source's probe is 100 epochs of SGD",
        ),
        Table(
            name="dcl_knn_cifar10",
            experiment="dcl_knn_cifar10",
            metric="knn_top1",
            protocol="kNN k=200 T=0.1 (frozen backbone)",
            losses=("ntxent", "dcl", "dclw"),
            batches=(128, 512),
            seeds=(0,),
            published=LIGHTLY,
            budget="CIFAR-10, ResNet-18, 200 epochs, one GPU, as the source",
        ),
    )
}


def run_name(loss: str, batch: int, seed: int) -> str:
    return f"{loss}_b{batch}_s{seed}"


def overrides(table: Table, loss: str, batch: int, seed: int) -> list[str]:
    """The ``train.py`` overrides of one run of ``table``."""
    return [f"experiment={table.experiment}", f"loss={loss}", f"data.batch_size={batch}", f"seed={seed}"]


def finished(folder: Path, table: Table) -> Done:
    """The finished runs of ``table`` under ``folder``, by (loss, batch, seed).

    A run counts where ``results.json`` exists (written last); one that records another
    experiment is skipped. Loss, batch size and seed are read from the run's own config and
    results, not from its folder name.
    """
    out: Done = {}
    for results in load_runs(folder):
        cfg_path = Path(results["run_dir"]) / "config.yaml"
        if not cfg_path.is_file():
            continue
        if results["choices"].get("experiment", table.experiment) != table.experiment:
            continue
        cfg = yaml.safe_load(cfg_path.read_text())
        key = (results["choices"]["loss"], int(cfg["data"]["batch_size"]), int(results["seed"]))
        out[key] = {**results, "extra_overrides": extra_overrides(cfg_path.parent)}
    return out


# What every run of a table is given (overrides()) or what only says where it runs.
_RUN_KEYS = ("experiment=", "loss=", "data.batch_size=", "seed=", "launcher=", "hydra.")


def extra_overrides(run_dir: Path) -> list[str]:
    """The run's command-line overrides beyond the table's own (``-- trainer.max_epochs=2`` and the like).

    Read from Hydra's record of the run (``.hydra/overrides.yaml``); none where there is no record.
    """
    recorded = run_dir / ".hydra" / "overrides.yaml"
    if not recorded.is_file():
        return []
    return [o for o in yaml.safe_load(recorded.read_text()) or [] if not o.lstrip("+~").startswith(_RUN_KEYS)]


def missing(folder: Path, table: Table) -> list[tuple[str, int, int]]:
    done = finished(folder, table)
    return [r for r in table.runs() if r not in done]


Done = dict[tuple[str, int, int], dict[str, Any]]  # what finished() returns


@dataclass
class Row:
    """Values over seeds at one batch size (top-1 of a loss, or a paired gap) and the published one."""

    loss: str
    batch: int
    values: list[float]  # one per seed, in seed order
    published: float | None

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0


def rows(done: Done, table: Table) -> list[Row]:
    """One row per (loss, batch) with at least one finished run, in the table's order."""
    out = []
    for loss in table.losses:
        for b in table.batches:
            values = [done[(loss, b, s)]["metrics"][table.metric] for s in table.seeds if (loss, b, s) in done]
            if values:
                out.append(Row(loss, b, values, table.published.top1.get((loss, b))))
    return out


def published_gap(table: Table, batch: int, loss: str = "dcl", base: str = "ntxent") -> float | None:
    p = table.published.top1
    return p[(loss, batch)] - p[(base, batch)] if (loss, batch) in p and (base, batch) in p else None


def gaps(done: Done, table: Table, loss: str = "dcl", base: str = "ntxent") -> list[Row]:
    """``loss`` − ``base`` per batch size: paired by seed (ours), beside the published difference."""
    out = []
    for b in table.batches:
        paired = [
            done[(loss, b, s)]["metrics"][table.metric] - done[(base, b, s)]["metrics"][table.metric]
            for s in table.seeds
            if (loss, b, s) in done and (base, b, s) in done
        ]
        if paired:
            out.append(Row(f"{loss}-{base}", b, paired, published_gap(table, b, loss, base)))
    return out


def _fmt(x: float | None, digits: int = 2, signed: bool = False) -> str:
    if x is None:
        return "–"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def to_markdown(done: Done, table: Table) -> str:
    p = table.published
    head = (
        f"**{table.name}** — {table.protocol}; ours: {table.budget}. "
        f"Published: {p.source}, {p.data}, {p.protocol}, {p.epochs} epochs"
        + (f" ({p.reference})" if p.reference else "")
        + ".\n\n"
    )
    changed = Counter(" ".join(res["extra_overrides"]) for res in done.values() if res["extra_overrides"])
    for extra, n in changed.items():
        head += f"{n} of {len(done)} runs changed the experiment config with `{extra}`.\n\n"
    lines = [
        "| loss | batch | ours top-1 (%) | seeds | published (%) | ours − published | protocol |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows(done, table):
        diff = r.mean - r.published if r.published is not None else None
        lines.append(
            f"| {LOSS_NAMES.get(r.loss, r.loss)} | {r.batch} | {r.mean:.2f} ± {r.std:.2f} | {len(r.values)} "
            f"| {_fmt(r.published)} | {_fmt(diff, signed=True)} | {table.metric.replace('_top1', '')} |"
        )
    gap_lines = [
        "",
        "DCL − SimCLR, paired by seed (mean ± std over seeds), beside the published difference:",
        "",
        "| batch | ours DCL − SimCLR | seeds | published DCL − SimCLR |",
        "|---:|---:|---:|---:|",
    ]
    for g in gaps(done, table):
        gap_lines.append(
            f"| {g.batch} | {g.mean:+.2f} ± {g.std:.2f} | {len(g.values)} | {_fmt(g.published, signed=True)} |"
        )
    return head + "\n".join(lines + gap_lines) + "\n"


def plot(done: Done, table: Table, out: Path) -> None:
    """Top-1 against batch size per loss (ours filled, published hollow), and the DCL − SimCLR gap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, gx) = plt.subplots(1, 2, figsize=(10, 4))
    ours = rows(done, table)
    for i, loss in enumerate(table.losses):
        color = f"C{i}"
        mine = [r for r in ours if r.loss == loss]
        ax.errorbar([r.batch for r in mine], [r.mean for r in mine], yerr=[r.std for r in mine], color=color,
                    marker="o", capsize=3, label=f"{LOSS_NAMES.get(loss, loss)} (ours)")  # fmt: skip
        pub = sorted((b, v) for (name, b), v in table.published.top1.items() if name == loss)
        ax.plot([b for b, _ in pub], [v for _, v in pub], color=color, marker="o", mfc="none", ls="--",
                label=f"{LOSS_NAMES.get(loss, loss)} ({table.published.source})")  # fmt: skip
    ticks = sorted(set(table.batches) | {b for _, b in table.published.top1})
    ax.set(xlabel="batch size", ylabel=f"{table.metric} (%)", title=f"{table.name} (published: {table.published.data})")
    ax.legend(fontsize=7)
    g = gaps(done, table)
    gx.errorbar([x.batch for x in g], [x.mean for x in g], yerr=[x.std for x in g], marker="o", capsize=3,
                label="ours")  # fmt: skip
    pub_gap = [(b, published_gap(table, b)) for b in sorted({b for _, b in table.published.top1})]
    pub_gap = [(b, v) for b, v in pub_gap if v is not None]
    gx.plot([b for b, _ in pub_gap], [v for _, v in pub_gap], marker="o", mfc="none", ls="--",
            label=table.published.source)  # fmt: skip
    gx.axhline(0, color="grey", lw=0.5)
    gx.set(xlabel="batch size", ylabel="DCL − SimCLR (points)", title="the DCL claim: the gap against batch size")
    gx.legend(fontsize=7)
    for a in (ax, gx):
        a.set_xscale("log", base=2)
        a.set_xticks(ticks, [str(t) for t in ticks])
        a.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
