"""The one inference path: ``Classifier.predict``, the analysis of a split and an ensemble all
run through :func:`predict_probabilities`, so they agree on everything that decides the numbers
(eval mode, no autograd, autocast, device, ``predict_step``, test-time augmentation)."""

from collections.abc import Callable

import torch

from fmnist_lightning.models.module import FashionMNISTModule
from fmnist_lightning.models.runtime import autocast_for
from fmnist_lightning.models.tta import TTA, tta_probabilities


def predict_probabilities(
    module: FashionMNISTModule,
    inputs: torch.Tensor,
    batch_size: int = 1000,
    precision: str | int = "32-true",
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    tta: TTA | None = None,
) -> torch.Tensor:
    """Softmax probabilities (N, classes), float32 on the CPU, computed on the module's device
    from normalised (N, 1, H, W) images, or what ``transform`` turns into them batch by batch.
    """
    was_training = module.training
    module.eval()
    outputs = [torch.empty(0, len(module.class_names))]
    try:
        with torch.inference_mode(), autocast_for(precision, module.device):
            for index, batch in enumerate(inputs.split(batch_size)):
                batch = batch.to(module.device, non_blocking=True)
                if transform is not None:
                    batch = transform(batch)

                def step(view: torch.Tensor, i: int = index) -> torch.Tensor:
                    return module.predict_step(view, i).float()

                output = step(batch)
                if tta is not None and tta.enabled:
                    output = tta_probabilities(step, batch, tta, module.background, first=output)
                outputs.append(output.cpu())
    finally:
        module.train(was_training)
    return torch.cat(outputs)
