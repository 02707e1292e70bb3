"""torchvision's ResNet-18 for 1x28x28 images: the ImageNet stem (7x7 stride 2, max-pool)
would shrink 28x28 to 7x7 before the first block, so it is a 3x3 stride-1 convolution
without max-pool, as ResNets for CIFAR: the four stages see 28, 14, 7 and 4 pixels."""

from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet


class ResNet18(ResNet):
    """11,172,810 parameters for 10 classes. ``freeze_backbone`` trains only the head (``fc``);
    the backbone's BatchNorm layers stay in eval mode, so their statistics do not move either."""

    def __init__(
        self, num_classes: int = 10, in_channels: int = 1, freeze_backbone: bool = False
    ) -> None:
        super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.maxpool = nn.Identity()
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            self.requires_grad_(False)
            self.head.requires_grad_(True)
            self.train()  # modules start in training mode: put the backbone's BatchNorm in eval

    @property
    def head(self) -> nn.Module:
        return self.fc

    def train(self, mode: bool = True) -> "ResNet18":
        super().train(mode)
        if self.freeze_backbone:
            for norm in (m for m in self.modules() if isinstance(m, nn.BatchNorm2d)):
                norm.eval()
        return self
