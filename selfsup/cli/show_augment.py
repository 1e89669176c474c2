"""Write a PNG grid of what the model sees: held-out images and their views.

One row per image: the evaluation input first, then every view (global views, then local
crops scaled up to the global size; the CutMix view shows its pasted box). Takes the same
overrides as train.py.

    python scripts/show_augment.py augment=randaugment --out views.png
    python scripts/show_augment.py augment=random_fields data=fashion_mnist --images 6

Images of other channel counts than 1 and 3 (``data.channels=13``) are shown in false colour: three
bands as red, green and blue, each stretched to its 2nd-98th percentile per image (``--bands 3,2,1``
picks them; by default the first, middle and last: selfsup/eval/display.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", help="train.py overrides, e.g. augment=cutmix data=cifar10")
    p.add_argument("--images", type=int, default=8, help="rows: held-out images to show")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bands", help="three channels shown as red, green, blue, e.g. 3,2,1 (false colour)")
    p.add_argument("--out", type=Path, default=Path("runs/views.png"), help="the PNG to write (default runs/views.png)")
    args = p.parse_intermixed_args(argv)  # overrides may come after the options

    import torch
    import torch.nn.functional as F
    from hydra import compose, initialize_config_dir
    from torch.utils.data import default_collate
    from torchvision.utils import save_image

    from selfsup import CONFIG_DIR
    from selfsup.build import build_datamodule, build_view_maker
    from selfsup.errors import ConfigError, user_errors_as_one_line
    from selfsup.eval.display import as_rgb

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=args.overrides)
    vm = build_view_maker(cfg)
    images = build_datamodule(cfg).held_out_images(args.images)  # uint8 (n, C, H, W)
    torch.manual_seed(args.seed)
    if vm.sample_transform is not None:  # per-sample backend: make the views as its DataLoader would
        batch = default_collate([vm.sample_transform(img) for img in images])
    else:
        batch = images
    out = vm(batch)
    n, s = images.shape[0], vm.size
    columns = [vm.prepare(images)]
    for g in out.groups:
        for view in g.split(n):
            columns.append(F.interpolate(view, size=(s, s), mode="nearest") if view.shape[-1] != s else view)
    grid = torch.stack(columns, 1).flatten(0, 1)  # row-major: image, then its columns
    grid = (grid * vm.std + vm.mean).clamp(0, 1)
    if args.bands is not None or grid.shape[1] not in (1, 3):
        with user_errors_as_one_line():
            try:
                bands = [int(b) for b in args.bands.split(",")] if args.bands is not None else None
                grid = as_rgb(grid, bands)
            except ValueError as e:
                raise ConfigError(f"--bands {args.bands}: {e}") from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, args.out, nrow=len(columns), padding=1, pad_value=1.0)
    print(f"wrote {args.out}: {n} images x (input + {out.count} views) at {s} px")
    return 0


if __name__ == "__main__":
    sys.exit(main())
