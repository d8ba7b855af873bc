"""What a run was trained with, as its config records it: each classifier's learning rate, batch size and epochs, and
the filter chain; the report puts them in summary.md and the HParams view, beside the realised synthetic share of
every generation (which the result rows record), so that two runs' settings can be read without their configs."""

from __future__ import annotations

from records.results import classifier_name
from reporting.runs import Run


def _section(config: dict, key: str) -> dict:
    value = config.get(key)
    return value if isinstance(value, dict) else {}


def classifier_settings(run: Run) -> list[dict[str, object]]:
    """Per classifier: name, arch, lr (``loop.classifier_lr`` when set), batch size (its own or ``data.batch_size``),
    max epochs, patience, pretrained."""
    config = run.config
    loop_lr = _section(config, "loop").get("classifier_lr")
    data_batch = _section(config, "data").get("batch_size")
    settings = []
    for spec in config.get("classifiers") or []:
        if not isinstance(spec, dict):
            continue
        settings.append({"name": classifier_name(spec.get("name"), spec.get("arch")), "arch": spec.get("arch"),
                         "lr": loop_lr if loop_lr is not None else spec.get("lr", 1e-3),
                         "batch_size": spec.get("batch_size") or data_batch,
                         "max_epochs": spec.get("max_epochs", 50), "patience": spec.get("patience", 5),
                         "pretrained": bool(spec.get("pretrained", False))})
    return settings


def filter_chain(run: Run) -> str:
    """The filters in order, e.g. ``ClipScoreFilter(r=0.3, quantile, text 'a photo of {class_name}') >
    UncertaintyFilter(r=0.3, quantile, label_probability)``; ``none`` without filters."""
    steps = []
    for spec in run.config.get("filters") or []:
        if not isinstance(spec, dict):
            continue
        name = str(spec.get("class_path", "filter")).rsplit(".", 1)[-1]
        args = spec.get("init_args") if isinstance(spec.get("init_args"), dict) else {}
        parts = [f"r={args['ratio']}"] if "ratio" in args else []
        parts += [str(args.get("mode", "quantile"))] if "ratio" in args else []
        if "template" in args:
            parts.append(f"text '{args['template']}'")
        if "score" in args:
            parts.append(str(args["score"]))
        if name == "UncertaintyFilter":
            classifiers = [c["name"] for c in classifier_settings(run)]
            chosen = _section(run.config, "quality").get("filter_classifier") or (classifiers[:1] or ["?"])[0]
            parts.append(f"on {chosen}")
        steps.append(f"{name}({', '.join(parts)})")
    return " > ".join(steps) or "none"


def realised_shares(run: Run) -> dict[int, float]:
    """The realised synthetic share of every generation (the same in each classifier's row of a generation)."""
    shares: dict[int, float] = {}
    for row in sorted(run.rows, key=lambda r: int(r["generation"])):
        value = row.get("realised_synthetic_share")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            shares.setdefault(int(row["generation"]), float(value))
    return shares
