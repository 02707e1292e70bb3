"""Knowledge distillation (Hinton et al. 2015): a student fitted to a teacher's softened
distribution as well as to the labels.

The teacher is the mean softmax ``p`` of trained members, each over its own test-time
augmentation views; at temperature T its distribution is ``softmax(log(p) / T)``. The
student's loss is ``alpha * T² * KL(teacher_T || student_T) + (1 - alpha) * CE``, the
cross-entropy with the run's label smoothing (T² keeps the soft term's gradients the size of
the hard one's as T changes)."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fmnist_lightning.models.module import FashionMNISTModule
from fmnist_lightning.models.tta import tta_probabilities


def softened(probabilities: torch.Tensor, temperature: float) -> torch.Tensor:
    """The log of ``softmax(log(p) / T)``; a probability that underflowed to 0 stays finite."""
    tiny = torch.finfo(probabilities.dtype).tiny
    return F.log_softmax(probabilities.clamp_min(tiny).log() / temperature, dim=1)


def distillation_loss(
    logits: torch.Tensor,
    teacher: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    alpha: float,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """The student's loss of ``logits`` against the teacher's probabilities and the labels."""
    student = F.log_softmax(logits.float() / temperature, dim=1)
    soft = F.kl_div(student, softened(teacher, temperature), reduction="batchmean", log_target=True)
    hard = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    return alpha * temperature**2 * soft + (1 - alpha) * hard


@dataclass(eq=False)
class Teacher:
    """Trained members in eval mode. Not a ``torch.nn.Module``: set as a student's attribute
    it adds nothing to the student's state_dict, so no checkpoint holds it or needs it."""

    members: list[FashionMNISTModule]
    temperature: float
    alpha: float

    def __deepcopy__(self, memo: dict) -> "Teacher":
        return self  # frozen: a copy of the student (EMA's, SWA's average) shares it

    def to(self, device: torch.device) -> "Teacher":
        """Its members on ``device``: the student's, once as fitting sets up (no submodule of
        the student, Lightning does not move it; training/distillation.py)."""
        for member in self.members:
            member.to(device)
        return self

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """The members' mean softmax over their own views of a batch of network inputs: each
        member's checkpoint ``tta``, not the student's, so that the teacher is what its
        checkpoints are (their hashes identify it) whatever the student is evaluated with."""
        predicted = []
        for member in self.members:
            step, first = member.predict_step, member.predict_step(images)
            predicted.append(tta_probabilities(step, images, member.tta, member.background, first))
        return torch.stack(predicted).mean(dim=0)

    def probabilities_of(self, images: torch.Tensor, batch_size: int) -> torch.Tensor:
        """``probabilities`` of many images, ``batch_size`` at a time."""
        return torch.cat([self.probabilities(batch) for batch in images.split(batch_size)])

    def loss(
        self,
        logits: torch.Tensor,
        images: torch.Tensor,
        labels: torch.Tensor,
        smoothing: float,
        probabilities: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The student's loss on a batch: against ``probabilities`` where the batch carries the
        teacher's (computed once per image), else online, the teacher seeing the batch as the
        student does (docs/recipes.md#distillation)."""
        teacher = self.probabilities(images) if probabilities is None else probabilities
        return distillation_loss(logits, teacher, labels, self.temperature, self.alpha, smoothing)
