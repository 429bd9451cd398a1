"""tmkt.models: spiking backbones behind the MODELS registry and build_model."""

from tmkt.models.base import NetOutput, SpikingNet
from tmkt.models.cnn import cnn_small
from tmkt.models.registry import MODELS, build_model
from tmkt.models.resnet import resnet18, resnet19
from tmkt.models.vgg import vgg_snn

MODELS.register("vgg_snn")(vgg_snn)
MODELS.register("resnet18")(resnet18)
MODELS.register("resnet19")(resnet19)
MODELS.register("cnn_small")(cnn_small)

__all__ = ["MODELS", "NetOutput", "SpikingNet", "build_model"]
