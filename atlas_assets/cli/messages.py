"""Errors in the words of the command line: the library's messages name Python calls and keywords
(`add_data`, `create_index`, `name=`, ...); in a terminal each becomes the `atlas` command or flag that
does the same, so the fix a message suggests can be typed as it is."""

from __future__ import annotations

import re

# Longest spellings first: "dataset.update_indices(rebuild_topic_models=True)" before "update_indices".
_CLI_TERMS: tuple[tuple[str, str], ...] = (
    (r"AtlasDataset\('([^']+)', unique_id_field=\.\.\.\)", r"`atlas ingest FILE --dataset \1 --id-field FIELD`"),
    (r"(?:dataset\.)?update_indices\(rebuild_topic_models=True\)", "`atlas update DATASET --rebuild-topics`"),
    (r"(?:dataset\.)?update_indices\(\)", "`atlas update DATASET`"),
    (r"\bupdate_indices\b", "`atlas update`"),
    (r"(?:dataset\.)?create_index\(\.\.\., topic_model=True\)", "`atlas index DATASET` (without --no-topics)"),
    (r"(?:dataset\.)?create_index\(\.\.\., duplicate_detection=True\)", "`atlas index DATASET` (without --no-duplicates)"),
    (r"(?:dataset\.)?create_index\(\.\.\.\)", "`atlas index DATASET`"),
    (r"\bcreate_index\b", "`atlas index`"),
    (r"(?:dataset\.)?add_data\(\)", "`atlas ingest`"),
    (r"\badd_data\b", "`atlas ingest`"),
    (r"(?:dataset\.)?get_map\([^)]*\)", "--map NAME"),
    (r"\bname= or atlas_index_id=", "--map NAME"),
    (r"\bname=", "--name"),
    (r"\bindexed_field=", "--field"),
    (r"\bunique_id_field=", "--id-field "),
)


def in_cli_terms(message: str) -> str:
    """The message with every Python call or keyword it names replaced by its `atlas` equivalent."""
    for pattern, replacement in _CLI_TERMS:
        message = re.sub(pattern, replacement, message)
    return message.replace("``", "`")
