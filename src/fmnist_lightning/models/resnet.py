"""torchvision's ResNet-18 adapted to 1x28x28 images.

The ImageNet stem (7x7 stride-2 convolution, then a 3x3 stride-2 max-pool) would shrink a
28x28 image to 7x7 before the first residual block. Here it is a 3x3 stride-1 convolution
without the max-pool, as ResNets for CIFAR do, so the four stages see 28, 14, 7 and 4
pixels. Everything after the stem is torchvision's ResNet-18 unchanged, apart from the
head: a new ``fc`` with one output per class. Loading torchvision's weight files into it
is ``models.pretrained``'s job.
"""

from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

HEAD = "fc"


class ResNet18(ResNet):
    """ResNet-18 with a 3x3 stride-1 stem and no max-pool; 11,172,810 parameters for 1x28x28, 10 classes.

    ``freeze_backbone`` trains only the head (``fc``): every other parameter has
    ``requires_grad=False`` and the backbone's BatchNorm layers stay in eval mode, so that
    their running statistics do not move either.
    """

    def __init__(
        self, num_classes: int = 10, in_channels: int = 1, freeze_backbone: bool = False
    ) -> None:
        super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.maxpool = nn.Identity()
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            for name, parameter in self.named_parameters():
                if not name.startswith(f"{HEAD}."):
                    parameter.requires_grad_(False)
            self.train()  # modules start in training mode: put the backbone's BatchNorm in eval

    @property
    def head(self) -> nn.Module:
        """The classification layer, which ``head_lr`` and ``freeze_backbone`` single out."""
        return self.fc

    def train(self, mode: bool = True) -> "ResNet18":
        super().train(mode)
        if self.freeze_backbone:
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        return self
