"""`pressrun preview`, `pressrun variables` and `pressrun settings`: the template author's commands."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tests.cli.cli_support import SMALL_MANIFEST, SPLIT_HTML, close_to, make_template, pixel, run_cli
from tests.conftest import open_image

from pressrun.settings import Settings

SAMPLE_MANIFEST = SMALL_MANIFEST + '\n[[sample]]\nid = "s1"\nname = "Sample"\ncolor = "#00ff00"\n'


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory.mktemp("preview") / "tpl", SPLIT_HTML, SAMPLE_MANIFEST)


# --- preview -------------------------------------------------------------------------------------


@pytest.mark.chromium
def test_preview_with_a_data_row(template, tmp_path):
    row = tmp_path / "row.json"
    row.write_text(json.dumps({"id": "7", "name": "Seven", "color": "#ff0000"}), encoding="utf-8")
    out = tmp_path / "previews" / "out.png"  # the parent folder is created
    run = run_cli("preview", template, "--data", row, "-o", out)

    assert run.exit_code == 0, run
    assert str(out) in run.stdout and "200×100 png" in run.stdout
    image = open_image(out.read_bytes())
    assert image.format == "PNG"
    assert image.size == (200, 100), "the manifest's size"
    assert close_to(pixel(out, (50, 50)), (255, 0, 0)), "the --data row's colour"


@pytest.mark.chromium
def test_preview_without_data_uses_the_manifest_sample(template, tmp_path):
    out = tmp_path / "sample.png"
    run = run_cli("preview", template, "-o", out)

    assert run.exit_code == 0, run
    assert open_image(out.read_bytes()).size == (200, 100)
    assert close_to(pixel(out, (50, 50)), (0, 255, 0)), "the [[sample]] row's colour"


@pytest.mark.chromium
def test_preview_without_data_types_the_sample_row_by_the_manifests_columns(tmp_path):
    manifest = SMALL_MANIFEST + '[columns]\nprice = "number"\n[[sample]]\nprice = "10"\n'
    typed = make_template(tmp_path / "tpl", "<p>{{ price * 0.9 }}</p>", manifest)
    out = tmp_path / "sample.png"
    run = run_cli("preview", typed, "-o", out)

    assert run.exit_code == 0, run
    assert open_image(out.read_bytes()).size == (200, 100)


def test_preview_sample_row_with_a_value_its_column_type_refuses(tmp_path):
    manifest = SMALL_MANIFEST + '[columns]\nprice = "number"\n[[sample]]\nprice = "ten"\n'
    typed = make_template(tmp_path / "tpl", "<p>{{ price }}</p>", manifest)
    run = run_cli("preview", typed, "-o", tmp_path / "sample.png")

    assert run.exit_code == 1, run
    assert "column 'price': 'ten' is not a number [invalid_value]" in run.stderr, run
    assert not (tmp_path / "sample.png").exists()


@pytest.mark.parametrize(
    ("out_name", "extra", "expected"),
    [
        ("out.txt", (), "the extension '.txt' is not an output format; name it .png, .jpg, .webp or .pdf"),
        ("noext", (), "the file has no extension"),
        ("d.jpg", ("--format", "png"), "the extension '.jpg' does not match --format png; name it d.png"),
        ("afile/x.png", (), "afile is a file, so no folder can be created inside it"),
        ("x.webp", ("--width", "5000", "--height", "10", "--scale", "4"), "20000 px, more than a WebP image can hold"),
    ],
)
def test_preview_refuses_an_output_it_cannot_write_as_named(template, tmp_path, out_name, extra, expected):
    (tmp_path / "afile").write_text("")
    run = run_cli("preview", template, "-o", tmp_path / out_name, *extra)

    assert run.exit_code == 2, run
    assert run.stderr.startswith("error: ") and expected in run.stderr, run
    assert "Traceback" not in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_preview_with_a_row_missing_a_variable_says_which(template, tmp_path):
    row = tmp_path / "row.json"
    row.write_text(json.dumps({"id": "7", "name": "Seven"}), encoding="utf-8")
    out = tmp_path / "out.png"
    run = run_cli("preview", template, "--data", row, "-o", out)

    assert run.exit_code == 1, run
    assert "'color'" in run.stderr and "[missing_variable]" in run.stderr
    assert "Traceback" not in run.stderr
    assert not out.exists()


# --- variables -----------------------------------------------------------------------------------

VARIABLES_HTML = """<h1>{{ title | upper }}</h1>
<p>{{ user.name }} ({{ user.address.city }})</p>
{% set label = "Total" %}{{ label }}
<ul>{% for item in items %}<li>{{ loop.index }} {{ item.name }}: {{ item.price | currency }}</li>{% endfor %}</ul>
"""


@pytest.fixture(scope="module")
def variables_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory.mktemp("variables") / "tpl", VARIABLES_HTML)


def test_variables_prints_nested_paths_one_per_line(variables_template):
    run = run_cli("variables", variables_template)

    assert run.exit_code == 0, run
    names = run.stdout.splitlines()
    assert {"title", "user.name", "user.address.city", "items[].name", "items[].price"} <= set(names)
    assert names == sorted(set(names)), "sorted, no duplicates"
    for not_a_row_variable in ("label", "item", "item.name", "loop", "loop.index", "upper", "currency"):
        assert not_a_row_variable not in names


def test_variables_json_is_the_same_list(variables_template):
    plain = run_cli("variables", variables_template)
    as_json = run_cli("variables", variables_template, "--json")

    assert as_json.exit_code == 0, as_json
    parsed = json.loads(as_json.stdout)
    assert isinstance(parsed, list)
    assert parsed == plain.stdout.splitlines()


def test_variables_of_a_broken_template_is_a_usage_error(tmp_path):
    template = make_template(tmp_path / "bad", "{% for x in items %}\n{{ x }}\n")
    run = run_cli("variables", template)
    assert run.exit_code == 2, run
    assert "error: template.html line" in run.stderr


# --- settings ------------------------------------------------------------------------------------

SETTING_BLOCK = re.compile(r"^(?P<name>\S+)\n  env: (?P<env>\S+)\n  default: (?P<default>.*)\n  (?P<help>.*)$", re.M)


def test_settings_lists_every_setting_with_its_env_var_and_help():
    run = run_cli("settings")

    assert run.exit_code == 0, run
    printed = {m["name"]: m for m in SETTING_BLOCK.finditer(run.stdout)}
    groups = {g: f for g, f in Settings.model_fields.items() if hasattr(f.annotation, "model_fields")}
    expected = {f"{group}.{name}" for group, group_field in groups.items()
                for name in group_field.annotation.model_fields}  # type: ignore[union-attr]
    expected |= {name for name in Settings.model_fields if name not in groups}
    assert set(printed) == expected
    assert printed["render.concurrency"]["env"] == "PRESSRUN_RENDER__CONCURRENCY"
    for name, match in printed.items():
        group, _, attr = name.partition(".")
        wanted = f"PRESSRUN_{group.upper()}__{attr.upper()}" if attr else f"PRESSRUN_{group.upper()}"
        assert match["env"] == wanted, "env vars map mechanically"
        assert match["help"].strip(), f"{name} has no help"
