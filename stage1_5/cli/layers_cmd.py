"""`stage1_5 layers`: list the backbone layer names a config may ask for (aliases and module paths)."""

from __future__ import annotations

import click

from stage1_5.config import TINY_RANDOM


@click.command("layers")
@click.option("--checkpoint", default=TINY_RANDOM, show_default=True, help="Hub name, local folder, or 'tiny-random'.")
@click.option("--modules", "show_modules", is_flag=True, help="Also list every hookable raw module path.")
@click.option("--device", default="cpu", show_default=True, help="Where to load the model (auto, cpu, cuda...).")
def command(checkpoint: str, show_modules: bool, device: str) -> None:
    """List the layer aliases of a backbone checkpoint and the module each one hooks."""
    from stage1_5.backbone.huggingface import HFAttachConfig, HuggingFaceBackboneAdapter

    adapter = HuggingFaceBackboneAdapter(HFAttachConfig(checkpoint=checkpoint, layers=(), device=device, num_workers=0))
    infos = [info for info in adapter.list_layers() if show_modules or info.kind == "alias"]
    width = max(len(info.name) for info in infos)
    click.echo(f"# {checkpoint}: {sum(i.kind == 'alias' for i in infos)} aliases" + ("" if show_modules else " (--modules lists raw module paths)"))
    for info in infos:
        target = f"-> {info.module_path}" if info.kind == "alias" else ""
        click.echo(f"{info.name:<{width}}  {info.axis:<6}  {target}".rstrip())
