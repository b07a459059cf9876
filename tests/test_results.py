from types import SimpleNamespace

from course import results


def fake_run(notebook="01_demo", profile="smoke"):
    return SimpleNamespace(notebook=notebook, profile=profile, models="offline", hardware="test CPU")


def test_records_are_written_replaced_and_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("FTKIT_RESULTS", str(tmp_path))
    results.record(fake_run(), "lora", task="sentiment", metric="accuracy", value=0.7, baseline=0.5)
    results.record(fake_run(), "lora", task="sentiment", metric="accuracy", value=0.8, baseline=0.5)
    results.record(fake_run(), "full", task="sentiment", metric="accuracy", value=0.9, trainable_params=10)
    results.record(fake_run(profile="cpu"), "lora", task="sentiment", metric="accuracy", value=0.85)
    results.record(fake_run("02_other"), "sft", task="qa", metric="rouge", value=0.3, wall_time_s=12.5)
    table = results.load_results()
    assert len(table) == 4
    smoke_lora = table[(table.method == "lora") & (table.profile == "smoke")]
    assert smoke_lora["value"].tolist() == [0.8]
    assert set(results.load_results(profile="cpu")["method"]) == {"lora"}
    assert list(table.columns[: len(results.FIELDS)]) == list(results.FIELDS)


def test_an_empty_folder_gives_an_empty_table(tmp_path):
    assert results.load_results(tmp_path).empty


def test_only_the_cpu_profiles_sweep_takes_the_name_the_notebooks_read(tmp_path, monkeypatch):
    monkeypatch.setenv("FTKIT_RESULTS", str(tmp_path))
    assert results.sweep_path("03_ulmfit", "cpu") == tmp_path / "sweeps" / "03_ulmfit.json"
    assert results.sweep_path("03_ulmfit", "smoke") == tmp_path / "sweeps" / "03_ulmfit_smoke.json"


def test_a_profile_without_recorded_figures_falls_back_to_the_cpu_ones_and_says_so():
    table, shown = results.recorded_results("gpu")
    assert shown == "cpu" and len(table) and set(table["profile"]) == {"cpu"}
    assert "these are the cpu profile's" in results.stand_in_notice("gpu", shown)
    assert results.stand_in_notice("cpu", "cpu") == ""
    path, shown = results.recorded_sweep("03_ulmfit", "gpu")
    assert shown == "cpu" and path.name == "03_ulmfit.json" and path.exists()
    assert results.recorded_sweep("03_ulmfit", "cpu") == (path, "cpu")


def test_per_example_scores_are_kept_beside_the_record_and_give_its_sample_size(tmp_path, monkeypatch):
    monkeypatch.setenv("FTKIT_RESULTS", str(tmp_path))
    entry = results.record(fake_run(), "lora", task="sentiment", metric="accuracy", value=0.75, baseline=0.5,
                           gain_se=0.2, scores=[1, 0, 1, 1])
    assert entry["n_eval"] == 4 and entry["gain_se"] == 0.2
    results.record(fake_run(), "full", task="sentiment", metric="accuracy", value=0.5, scores=[0.0, 1.0])
    results.record(fake_run(), "lora", task="sentiment", metric="accuracy", value=0.5, scores=[1, 0])  # replaces
    assert results.load_scores("01_demo", "lora", "sentiment", "smoke") == [1, 0]
    assert results.load_scores("01_demo", "full", "sentiment", "smoke") == [0.0, 1.0]
    assert results.load_scores("01_demo", "lora", "sentiment", "cpu") is None
    assert results.load_scores("09_absent", "lora", "sentiment", "smoke") is None
    assert results.load_results()["n_eval"].tolist() == [2, 2]


def test_a_sample_size_that_disagrees_with_the_scores_is_an_error():
    import pytest

    with pytest.raises(ValueError, match="n_eval=5 but 4 per-example scores"):
        results.record(fake_run(), "lora", task="t", metric="accuracy", value=0.5, n_eval=5, scores=[1, 0, 1, 1])


def test_a_unit_for_scores_is_kept_and_needs_the_scores(tmp_path, monkeypatch):
    import pytest

    monkeypatch.setenv("FTKIT_RESULTS", str(tmp_path))
    entry = results.record(fake_run(), "full", task="docs", metric="held-out perplexity", value=15.0, baseline=25.0,
                           scores=[2.7, 2.8], scores_unit="nats per token")
    assert entry["scores_unit"] == "nats per token" and entry["n_eval"] == 2
    with pytest.raises(ValueError, match="scores_unit was given without scores"):
        results.record(fake_run(), "full", task="docs", metric="held-out perplexity", value=15.0, scores_unit="nats")
