"""`kerasdl list [--json]`: registered models and data sets."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("list", help="list registered models and data sets")
    parser.add_argument("--json", action="store_true", help="print JSON: {models: [...], datasets: [...]}")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kerasdl.data import dataset_sources
    from kerasdl.registry import model_specs

    models = [spec.to_json() for spec in model_specs()]
    datasets = [{"name": s.name, "classes": len(s.class_names), "description": s.description} for s in dataset_sources()]
    if args.json:
        print(json.dumps({"models": models, "datasets": datasets}, indent=2))
        return 0
    print("models:")
    widths = {key: max(len(m[key]) for m in models) for key in ("name", "family", "task", "default_data")}
    for m in models:
        print(f"  {m['name']:<{widths['name']}}  {m['family']:<{widths['family']}}  {m['task']:<{widths['task']}}  "
              f"data={m['default_data']:<{widths['default_data']}}  {m['lesson']}")
    print("data sets:")
    width = max(len(d["name"]) for d in datasets)
    for d in datasets:
        print(f"  {d['name']:<{width}}  {d['description']}")
    return 0
