"""An index records the embedding model it was built with; another model is refused with a clear
error (the same dimension included: MiniLM and multilingual-e5-small both make 384-d vectors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.errors import FlywheelError
from flywheel.knowledge._index import DocIndex


def test_an_index_built_with_one_embedder_refuses_another(tmp_path: Path) -> None:
    uri = str(tmp_path / "m.db")
    built = DocIndex(uri, "docs", 384, embedder="all-MiniLM-L6-v2")
    built.ensure()
    assert built.built_with() == "all-MiniLM-L6-v2"
    DocIndex(uri, "docs", 384, embedder="all-minilm-l6-v2").ensure()  # same model, other spelling
    other = DocIndex(uri, "docs", 384, embedder="multilingual-e5-small")
    with pytest.raises(FlywheelError) as err:
        other.ensure()
    assert err.value.key == "index_embedder_mismatch"
    assert "--rebuild" in err.value.render("en") and "--rebuild" in err.value.render("ja")
    with pytest.raises(FlywheelError):
        other.check_compatible()  # what a search checks first
    other.drop()
    other.ensure()  # re-ingesting (--rebuild drops the collection) records the new model
    assert DocIndex(uri, "docs", 384).built_with() == "multilingual-e5-small"
