"""The package's structure: no import cycle, the VAE layers importing one way, and the key
table agreeing with the shipped model configs and their documentation."""

import ast
from pathlib import Path

import yaml
from conftest import REPO

from kmervae.vae import config as cfg

SRC = REPO / "src"
#: the layers of kmervae.vae, each importing only earlier ones
VAE_LAYERS = ["config", "blocks", "inputs", "heads", "bodies", "losses", "model", "files"]


#: modules below every layer: the profile contract, the error type, options, progress and the version
FOUNDATIONS = {
    "kmervae",
    "kmervae.errors",
    "kmervae.kmers",
    "kmervae.options",
    "kmervae.progress",
    "kmervae.version",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the kmervae modules it imports anywhere in its text (also inside functions)."""
    paths = {module_name(p): p for p in (SRC / "kmervae").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                # `from pkg import mod` imports the module pkg.mod
                targets |= {f"{base}.{a.name}" if f"{base}.{a.name}" in paths else base for a in node.names}
        graph[name] = {t for t in targets if t in paths and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes, or None (iterative depth-first search)."""
    state: dict[str, int] = {}
    for root in sorted(graph):
        if root in state:
            continue
        stack = [(root, iter(sorted(graph[root])))]
        path = [root]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                return path[path.index(child) :] + [child]
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(sorted(graph.get(child, ())))))
                path.append(child)
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert "kmervae.vae.model" in graph and "kmervae.vae.config" in graph["kmervae.vae.model"]
    assert find_cycle(graph) is None


def test_the_vae_layers_import_one_way():
    graph = import_graph()
    for i, layer in enumerate(VAE_LAYERS):
        inside = {t.rsplit(".", 1)[1] for t in graph[f"kmervae.vae.{layer}"] if t.startswith("kmervae.vae.")}
        assert inside <= set(VAE_LAYERS[:i]), (layer, inside)
    assert not any(t.startswith("kmervae.vae") for t in graph["kmervae.vae.config"])
    # the trainer needs the config, the model and its loss contract, and the weight files
    assert {t for t in graph["kmervae.train"] if t.startswith("kmervae.vae")} <= {
        "kmervae.vae.config",
        "kmervae.vae.losses",
        "kmervae.vae.model",
        "kmervae.vae.files",
    }
    # files in and out come first: nothing in kmervae.io imports the model, training or a stage
    for module, targets in graph.items():
        if module.startswith("kmervae.io."):
            assert all(
                t.startswith("kmervae.io") or t in FOUNDATIONS for t in targets
            ), (module, sorted(targets))


def _leaf_lines(text: str) -> dict[str, str]:
    """Dotted key -> its line, for the leaf keys of a commented YAML file (2-space indents)."""
    out, stack = {}, []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or ":" not in line:
            continue
        depth = (len(line) - len(line.lstrip())) // 2
        key, rest = line.strip().split(":", 1)
        stack[depth:] = [key]
        if rest.split("#")[0].strip():
            out[".".join(stack)] = line
    return out


def test_default_yaml_spells_out_and_comments_every_core_key_at_its_default():
    text = (REPO / "config/models/default.yaml").read_text()
    lines = _leaf_lines(text)
    core = {k.name for k in cfg.KEYS if not k.omit_default}
    assert set(lines) == core
    assert all("#" in line for line in lines.values()), [k for k, v in lines.items() if "#" not in v]
    values = yaml.safe_load(text)
    for key in cfg.KEYS:
        if not key.omit_default:
            node = values
            for part in key.name.split("."):
                node = node[part]
            assert node == key.default, key.name


def test_every_shipped_model_config_uses_table_keys_and_every_optional_key_is_documented():
    for path in sorted((REPO / "config/models").glob("*.yaml")):
        for dotted in _leaf_lines(path.read_text()):
            # a mapping-valued key (model.branches) is documented by its own line, not its entries
            assert dotted in cfg.TABLE or dotted.rsplit(".", 1)[0] in cfg.TABLE, (path.name, dotted)
    family_doc = (REPO / "docs/family.md").read_text()
    train_doc = (REPO / "docs/train.md").read_text()
    for key in cfg.KEYS:
        assert key.doc and "\n" not in key.doc
        if key.omit_default:
            assert f"`{key.name}" in family_doc + train_doc, key.name
