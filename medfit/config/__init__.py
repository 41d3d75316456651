"""Typed, frozen experiment configuration: sections (schema), loading and overrides, cross-section checks."""
from medfit.config.loading import apply_override, config_from_dict, config_to_dict, config_to_yaml, load_config, updated
from medfit.config.schema import (
                                   AuditConfig,
                                   AugmentConfig,
                                   ClipConfig,
                                   CovariatesConfig,
                                   DataConfig,
                                   EvaluateConfig,
                                   ExperimentConfig,
                                   FusionConfig,
                                   FusionMemberConfig,
                                   LoraConfig,
                                   ModelConfig,
                                   OptimConfig,
                                   PreprocessConfig,
                                   PretrainConfig,
                                   TrainConfig,
                                   TuneConfig,
                                   TuneStage,
                                   VLMConfig,
                                   VolumeConfig,
                                   default_tune_space,
                                   default_tune_stages,
)

__all__ = ["AugmentConfig", "AuditConfig", "ClipConfig", "CovariatesConfig", "DataConfig", "EvaluateConfig", "ExperimentConfig",
           "FusionConfig", "FusionMemberConfig", "LoraConfig", "ModelConfig", "OptimConfig", "PreprocessConfig",
           "PretrainConfig", "TrainConfig", "TuneConfig", "TuneStage", "VLMConfig", "VolumeConfig", "apply_override",
           "config_from_dict", "config_to_dict", "config_to_yaml", "default_tune_space", "default_tune_stages",
           "load_config", "updated"]
