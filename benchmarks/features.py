"""House Prices: what each option of the feature module is worth, on two fold layouts.

One model (`--kind`, linear by default: the fastest, and the one that extrapolates most) is
cross-validated over all 1460 training rows with params.yaml's features, then with one option
changed at a time, and then on the combinations of `neighborhood_cap` and `drop_outliers` (which
act together: docs/features.md says why), with and without `price_cap`, which caps the same
houses' predictions afterwards. Every row is scored on two layouts of
5-fold CV, one repeat each: the shuffled folds the `cv` stage uses (`base.seed`) and the book's
contiguous folds (`cv.shuffle: false`), which split the two giant partial sales differently.
Every other param is params.yaml's.

Run: .venv/bin/python benchmarks/features.py [--data DIR] [--kind linear|mlp]
     [--markdown docs/results/features.md]
"""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

from _data import add_data_argument, load_clean_frames
from _report import add_markdown_argument, markdown_table, results_page

from pipeline.common.params import RUNTIME, RuntimeParams, parse_section, read_params, with_overrides
from pipeline.common.runtime import set_threads
from pipeline.house_prices.experiment import parse_experiment, run_cv

ROOT = Path(__file__).resolve().parents[1]
PAGE = "docs/results/features.md"
LAYOUTS = {"shuffled folds": {"cv.shuffle": True}, "contiguous folds": {"cv.shuffle": False}}
# One option changed at a time, from params.yaml's features.
ONE_AT_A_TIME = {
    "params.yaml's features": {},
    "derived: false": {"features.derived": False},
    "ordinal: none": {"features.ordinal": "none"},
    "log_skewed: false": {"features.log_skewed": False},
    "clip: false": {"features.clip": False},
    "price_cap: false": {"features.price_cap": False},
}
# neighborhood_cap x drop_outliers x price_cap.
PAIRS = {(cap, drop, price): {"features.neighborhood_cap": cap, "features.drop_outliers": drop,
                              "features.price_cap": price}
         for price in (True, False) for cap in (False, True) for drop in (False, True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--kind", default="linear", choices=("linear", "mlp"), help="the model scored")
    add_markdown_argument(parser, PAGE)
    args = parser.parse_args()
    with results_page(__file__, "House Prices: the feature options", __doc__, args.markdown) as page:
        measure(args, page)


def measure(args: argparse.Namespace, page: object) -> None:
    raw = with_overrides(read_params(ROOT / "params.yaml"),
                         {"model.members": [], "model.kind": args.kind, "cv.repeats": 1})
    set_threads(parse_section(raw[RUNTIME], RuntimeParams, RUNTIME).threads)
    train, test = load_clean_frames(args.data)
    base = parse_experiment(raw)
    print(f"{args.kind}, {base.cv.folds}-fold CV log-RMSE (mean ± std over the folds) over all {len(train)} rows")

    def score(overrides: dict) -> list[str]:
        cells = []
        for layout in LAYOUTS.values():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = run_cv(parse_experiment(with_overrides(raw, {**overrides, **layout})), train, test)
            cells.append(f"{result.mean:.4f} ± {result.std:.4f}")
        return cells

    single = [[name, *score(overrides)] for name, overrides in ONE_AT_A_TIME.items()]
    for row in single:
        print(f"  {row[0]:<26} " + "   ".join(row[1:]), flush=True)
    pairs = [["on" if cap else "off", "on" if drop else "off", "on" if price else "off", *score(overrides)]
             for (cap, drop, price), overrides in PAIRS.items()]
    for row in pairs:
        print(f"  neighborhood_cap {row[0]:<3} drop_outliers {row[1]:<3} price_cap {row[2]:<3} "
              + "   ".join(row[3:]), flush=True)
    page.markdown("## One option at a time\n\n" + markdown_table(["features", *LAYOUTS], single))
    page.markdown("## `neighborhood_cap`, `drop_outliers` and `price_cap`\n\n"
                  + markdown_table(["`neighborhood_cap`", "`drop_outliers`", "`price_cap`", *LAYOUTS], pairs))


if __name__ == "__main__":
    main()
