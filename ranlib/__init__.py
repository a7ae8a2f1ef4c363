"""ranlib: the Reverse Attention Network (Huang et al., BMVC 2017) for semantic segmentation."""

from ranlib.losses import RANLoss
from ranlib.model import RAN, ModelConfig, RANOutput, build_model

__all__ = ["RAN", "RANLoss", "RANOutput", "ModelConfig", "build_model"]
__version__ = "0.1.0"
