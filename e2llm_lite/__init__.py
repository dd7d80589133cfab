"""e2llm-lite: a small, tested reference implementation of E²-LLM (arXiv 2401.06951)."""
from e2llm_lite.augment import (SCHEMES, AugmentConfig, Draw, Scheme, e2_position_ids, max_offset, register_scheme, sample,
                                sample_for_step)
from e2llm_lite.hf import check_position_ids, e2_context, e2_forward, rope_scale, rotary_modules, save_for_scale, scale_for_length
from e2llm_lite.rope import apply_rope, apply_rope_complex, e2_positions, inv_freq, pi_positions, rope_angles, score
from e2llm_lite.scaling import FAMILIES, Family, register_family

__version__ = "0.1.0"

__all__ = [
    "AugmentConfig", "Draw", "Scheme", "SCHEMES", "sample", "sample_for_step", "register_scheme", "FAMILIES", "Family",
    "register_family", "max_offset", "e2_position_ids",
    "rope_scale", "e2_context", "e2_forward", "rotary_modules", "check_position_ids", "scale_for_length", "save_for_scale",
    "inv_freq", "rope_angles", "apply_rope", "apply_rope_complex", "score", "pi_positions", "e2_positions",
]
