"""The `diffkit` command: `plugins` (what is registered), `check PLUGIN` (the generic
rule checks on one plugin's primitives), `plan` (a checkpointing plan for a budget),
`budgets` (the installed budget presets), `coverage` (docs/coverage.md's table)."""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict


def subgradient_table() -> str:
    """The Markdown table of every primitive's declared behaviour at non-differentiable
    points (docs/conventions.md embeds it; a test keeps the two identical)."""
    from diffkit.plugins import registry

    reg = registry()
    rows = ["| primitive | plugin | at non-differentiable points |", "|---|---|---|"]
    for name in sorted(reg.primitives):
        text = reg.primitives[name].subgradient
        if text:
            rows.append(f"| `{name}` | {reg.origin[name]} | {text.replace('|', '/')} |")
    return "\n".join(rows)


def _plugins(args) -> int:
    from diffkit.plugins import registry

    if args.subgradients:
        print(subgradient_table())
        return 0
    reg = registry()
    print("backends:")
    for name in reg.backends:
        print(f"  {name:<10} from plugin {reg.backend_origin[name]}")
    by_plugin = defaultdict(list)
    for name, origin in reg.origin.items():
        by_plugin[origin].append(name)
    coverage = {}
    for b in reg.backends:
        try:
            coverage[b] = set(reg.kernels(b))
        except Exception as e:  # an optional backend whose library is missing
            coverage[b] = set()
            print(f"  ({b}: kernels unavailable: {e})")
    for origin, names in sorted(by_plugin.items()):
        print(f"\nprimitives from plugin {origin} ({len(names)}):")
        for name in sorted(names):
            have = [b for b in reg.backends if name in coverage[b]]
            print(f"  {name:<24} kernels: {', '.join(have) or 'none'}")
    _print_left_out()
    return 0


def _print_left_out() -> None:
    """The broken plugins (left out, with why) and the disabled ones."""
    from diffkit.plugins import DISABLE_ENV, broken_plugins, disabled_plugins

    broken = broken_plugins()
    if broken:
        print(f"\nbroken plugins, left out ({len(broken)}):")
        for name, why in sorted(broken.items()):
            print(f"  {name:<24} {why}")
    disabled = disabled_plugins()
    if disabled:
        print(f"\ndisabled plugins ({DISABLE_ENV} or the user configuration file): "
              f"{', '.join(sorted(disabled))}")


def _check(args) -> int:
    from diffkit.plugins import registry
    from diffkit.testing import check_primitive

    reg = registry()
    plugin = _plugin_name(args.plugin)
    names = sorted(n for n, o in reg.origin.items() if o == plugin)
    if not names:
        print(f"no primitives from plugin {args.plugin!r}; plugins with primitives: "
              f"{', '.join(sorted(set(reg.origin.values())))}", file=sys.stderr)
        return 2
    backends = list(reg.backends) if args.backend == "all" else [args.backend]
    failures = nondiff = 0
    for backend in backends:
        for name in names:
            try:
                n = check_primitive(name, backend, order=args.order)
            except Exception as e:  # report every failure, then exit non-zero
                failures += 1
                print(f"FAIL  {backend:<6} {name}: {e}")
                continue
            if reg.primitives[name].nondiff:
                nondiff += 1
                print(f"ok    {backend:<6} {name} (non-differentiable: values and zero "
                      f"derivatives checked)")
            else:
                print(f"ok    {backend:<6} {name} (derivatives checked in {n} cases)")
    passed = len(names) * len(backends) - failures
    print(f"\n{passed} passed, {failures} failed" + (
        f" (of the passed, {nondiff} non-differentiable: values and zero derivatives checked)"
        if nondiff else ""))
    return 1 if failures else 0


def _coverage(args) -> int:
    from diffkit.coverage import table

    sys.stdout.write(table())
    return 0


def _plugin_name(name: str) -> str:
    """Accept a plugin's registered name (`stencil`) or its module (`diffkit_stencil`)."""
    from diffkit import plugins

    plugins.registry()
    for plugin, registered in plugins.plugin_manager().list_name_plugin():
        if getattr(registered, "__name__", None) == name:
            return plugin
    return name


def _budgets(args) -> int:
    """Print each installed preset's memory, disk tier, schedule and first comment line."""
    from diffkit.checkpoint.budget import PRESET_DIR, load_budget, presets
    from diffkit.errors import BudgetError

    print('budget presets: budget="NAME" in a loop, or `diffkit plan --config NAME`')
    for name, path in presets().items():
        try:
            b = load_budget(name)
        except BudgetError as e:  # e.g. the disk preset's directory is not writable here
            print(f"  {name:<12} unusable here: {e}")
            continue
        disk = f"{_size(b.disk.size)} at {b.disk.path}" if b.disk else "none"
        print(f"  {name:<12} memory {_size(b.memory):<8} disk {disk:<24} schedule {b.schedule}")
        about = path.read_text().splitlines()[0].lstrip("# ")
        print(f"  {'':<12} {about}")
    print(f'\nalso accepted: a memory size (budget="512MiB") or a YAML file path; '
          f"the presets are in {PRESET_DIR}")
    return 0


def _size(n: int) -> str:
    """Bytes in the largest binary unit that keeps a number >= 1: 2147483648 -> '2 GiB'."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n} B"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plugins", help="list backends, primitives and the plugin of each")
    p.add_argument("--subgradients", action="store_true",
                   help="print the table of choices at non-differentiable points (Markdown)")
    p.set_defaults(run=_plugins)
    c = sub.add_parser("check", help="run the generic rule checks on a plugin's primitives")
    c.add_argument("plugin", help="plugin name as listed by `diffkit plugins`")
    c.add_argument("--backend", default="numpy", help="backend name, or 'all'")
    c.add_argument("--order", type=int, default=2, help="derivative order to check")
    c.set_defaults(run=_check)
    sub.add_parser("budgets", help="list the installed budget presets").set_defaults(
        run=_budgets)
    sub.add_parser("coverage", help="print docs/coverage.md: each public function's "
                   "backends and derivative modes (Markdown)").set_defaults(run=_coverage)
    from diffkit.checkpoint.cli_plan import add_plan_parser, run_plan

    add_plan_parser(sub).set_defaults(run=run_plan)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
