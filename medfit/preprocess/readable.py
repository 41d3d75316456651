"""``preprocess.on_bad_file: skip``: the manifest rows that prepare without error, and the list of those that do not."""
from __future__ import annotations

import logging

import pandas as pd
from tqdm.auto import tqdm

from medfit.config import ExperimentConfig
from medfit.data.manifest import Manifest
from medfit.errors import DataError
from medfit.preprocess.study import input_loader, study_rows
from medfit.run_folder import RunFolder

log = logging.getLogger(__name__)
SKIPPED_COLUMNS = ["image", "split", "reason"]


def readable_rows(cfg: ExperimentConfig, manifest: Manifest, progress: bool = False) -> tuple[Manifest, pd.DataFrame]:
    """(the rows whose study expansion and every prepared input load, the others with the reason), as training reads
    them; loading fills the preprocess cache, so training reads those rows from it."""
    expanded, failed = [], {}
    for i, row in manifest.df.iterrows():
        try:
            expanded.append(study_rows(manifest.with_df(manifest.df.loc[[i]]), cfg).df.assign(_row=i))
        except DataError as exc:
            failed[i] = str(exc)
    table = pd.concat(expanded, ignore_index=True) if expanded else manifest.df.head(0).assign(_row=0)
    load, _ = input_loader(cfg, table)
    for _, row in tqdm(list(table.iterrows()), desc="checking files", disable=not progress, leave=False):
        if row["_row"] in failed:
            continue
        try:
            load(row)
        except DataError as exc:
            failed[row["_row"]] = str(exc)
    df = manifest.df
    skipped = pd.DataFrame([{"image": df.at[i, "image"], "split": df.at[i, "split"], "reason": reason}
                            for i, reason in failed.items()], columns=SKIPPED_COLUMNS)
    return manifest.with_df(df.drop(index=list(failed))), skipped


def skip_unreadable(cfg: ExperimentConfig, manifest: Manifest, run: RunFolder | None) -> Manifest:
    """Drop the rows that cannot be prepared; list them in the run folder and say so in one line (None: no writing)."""
    kept, skipped = readable_rows(cfg, manifest, cfg.train.progress_bar)
    if run is not None:
        run.write_csv("skipped", skipped)
    if len(skipped):
        where = run.file("skipped") if run is not None else "the log"
        log.warning("skipped %d of %d rows that cannot be read (preprocess.on_bad_file: skip), e.g. %s; listed in %s",
                    len(skipped), len(manifest), skipped["image"].iloc[0], where)
    return kept
