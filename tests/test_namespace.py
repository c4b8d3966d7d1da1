"""The flat public namespace: every advertised name resolves, lazily, to what its module defines."""

import importlib

import jaxlatent


def test_every_export_resolves_to_its_module():
    for name in jaxlatent.__all__:
        if name == "__version__":
            continue
        value = getattr(jaxlatent, name)
        module = importlib.import_module(jaxlatent._EXPORTS[name])
        assert value is getattr(module, name), name
    assert set(dir(jaxlatent)) == set(jaxlatent.__all__)


def test_unknown_name_says_so():
    try:
        jaxlatent.no_such_thing  # noqa: B018
    except AttributeError as err:
        assert "no_such_thing" in str(err)
    else:
        raise AssertionError("expected AttributeError")
