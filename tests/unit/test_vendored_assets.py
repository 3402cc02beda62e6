"""The browser libraries the pages load are in the package, with their licences, and each
served name points at one file."""

from __future__ import annotations

from importlib.resources import files

from bloghub.api.assets import VENDORED, catalog, load, vendored_path


def test_every_pinned_file_is_in_the_package_with_its_licence() -> None:
    static = files("bloghub.api").joinpath("static")
    for lib in VENDORED:
        for name in lib.files:
            assert static.joinpath(vendored_path(lib, name)).is_file(), (lib.package, name)
        assert "LICENSE" in lib.files, lib.package


def test_served_names_are_the_scripts_and_styles_only() -> None:
    served = catalog(("docs.js",), VENDORED)
    assert served["docs.js"] == "docs.js"
    assert served["swagger-ui-bundle.js"] == "vendor/swagger-ui/swagger-ui-bundle.js"
    assert served["uPlot.iife.min.js"] == "vendor/uplot/uPlot.iife.min.js"
    assert not [name for name in served if not name.endswith((".js", ".css"))]
    for path in served.values():
        assert load(path).body
