"""Every configuration a diffusers user can reach, as rows of (scheduler, options) to search.

Each row is one method (a scheduler class with its method-defining options: algorithm, order,
B(h) variant). Its *grid* options (timestep_spacing x sigma family: plain, use_karras_sigmas,
use_exponential_sigmas, use_beta_sigmas, use_lu_lambdas where present; solver_type) are searched
in full; its *end* options (final_sigmas_type, lower_order_final, euler_at_final) are then searched
in full around the best grid configurations (:mod:`diffusion_lab.bench.search`). Combinations a
scheduler refuses are skipped. Thresholding / clipping are left out: the data here is unbounded.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

TIMESTEP_SPACINGS = ("leading", "linspace", "trailing")
SIGMA_FAMILIES = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas")


@dataclass
class DiffusersRow:
    """One method: ``cls`` with ``fixed`` kwargs; ``grid`` and ``end`` map option -> values."""

    name: str
    cls: str
    fixed: dict
    grid: dict = field(default_factory=dict)
    end: dict = field(default_factory=dict)
    families: tuple[str, ...] = SIGMA_FAMILIES
    stochastic: bool = False

    def spacings(self) -> list[dict]:
        """timestep_spacing x (plain | each sigma family)."""
        out = []
        for ts in TIMESTEP_SPACINGS:
            out.append({"timestep_spacing": ts})
            out += [{"timestep_spacing": ts, fam: True} for fam in self.families]
        return out

    def grid_configs(self) -> list[dict]:
        keys = list(self.grid)
        return [{**sp, **dict(zip(keys, vals, strict=True))}
                for sp in self.spacings() for vals in itertools.product(*self.grid.values())]

    def end_configs(self) -> list[dict]:
        keys = list(self.end)
        return [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*self.end.values())]


def _dpm_end(euler_at_final: bool = True) -> dict:
    end = {"final_sigmas_type": ["zero", "sigma_min"], "lower_order_final": [True, False]}
    if euler_at_final:
        end["euler_at_final"] = [False, True]
    return end


def rows() -> list[DiffusersRow]:
    dpm = "DPMSolverMultistepScheduler"
    lu = (*SIGMA_FAMILIES, "use_lu_lambdas")
    out = [DiffusersRow("DDIM", "DDIMScheduler", {"clip_sample": False},
                        end={"set_alpha_to_one": [True, False]}, families=())]
    for algo, label, stochastic in (("dpmsolver++", "DPM-Solver++", False),
                                    ("dpmsolver", "DPM-Solver", False),
                                    ("sde-dpmsolver++", "DPM-Solver++ SDE", True)):
        for order in (1, 2, 3):
            if stochastic and order == 1:
                continue
            out.append(DiffusersRow(
                f"{label} {order}M", dpm, {"algorithm_type": algo, "solver_order": order},
                grid={"solver_type": ["midpoint", "heun"]} if order == 2 else {},
                end=_dpm_end(), families=lu, stochastic=stochastic))
    for order in (2, 3):
        out.append(DiffusersRow(
            f"DPM-Solver++ {order}S (singlestep)", "DPMSolverSinglestepScheduler",
            {"algorithm_type": "dpmsolver++", "solver_order": order},
            grid={"solver_type": ["midpoint", "heun"]},
            end={"final_sigmas_type": ["zero", "sigma_min"], "lower_order_final": [True, False]}))
        out.append(DiffusersRow(
            f"DEIS {order}M", "DEISMultistepScheduler", {"solver_order": order},
            end={"lower_order_final": [True, False]}))
    for variant in ("bh1", "bh2"):
        for order in (1, 2, 3):
            out.append(DiffusersRow(
                f"UniPC ({variant}) {order}", "UniPCMultistepScheduler",
                {"solver_type": variant, "solver_order": order},
                end={"final_sigmas_type": ["zero", "sigma_min"], "lower_order_final": [True, False],
                     "disable_corrector": [[], [0]]}))
    out += [
        DiffusersRow("Euler", "EulerDiscreteScheduler", {},
                     grid={"interpolation_type": ["linear", "log_linear"]},
                     end={"final_sigmas_type": ["zero", "sigma_min"]}),
        DiffusersRow("Heun", "HeunDiscreteScheduler", {}),
        DiffusersRow("KDPM2", "KDPM2DiscreteScheduler", {}),
        DiffusersRow("LMS", "LMSDiscreteScheduler", {}),
        DiffusersRow("PNDM (PLMS)", "PNDMScheduler", {"skip_prk_steps": True},
                     end={"set_alpha_to_one": [False, True]}, families=()),
        DiffusersRow("Euler ancestral", "EulerAncestralDiscreteScheduler", {}, families=(),
                     stochastic=True),
        DiffusersRow("DDPM", "DDPMScheduler", {"clip_sample": False}, families=(),
                     grid={"variance_type": ["fixed_small", "fixed_large"]}, stochastic=True),
        DiffusersRow("SA-Solver", "SASolverScheduler", {},
                     grid={"predictor_order": [2, 3], "corrector_order": [1, 2, 3]},
                     end={"lower_order_final": [True, False]}, stochastic=True),
    ]
    return out
