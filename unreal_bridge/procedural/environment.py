"""Time of day and weather, approximated: sun light for TinyRenderer plus numpy post-processing.

The TinyRenderer shades with one directional light (ambient + diffuse * n.l + specular, the
diffuse/specular part tinted by `lightColor`, optional shadow map). Everything a single light
cannot do — sky, fog, rain, wet ground — is applied afterwards in numpy from the depth and
segmentation passes, vectorised and seeded, so the result is a pure function of the clip.

The sun and weather are the resolved clip's (`contract.clip.ClipEnvironment`: elevation in
degrees above the horizon, negative = night; azimuth in degrees clockwise from north (+Y)
towards east (+X), compass style; weather scalars in [0, 1]).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contract.clip import ClipEnvironment


def _smoothstep(edge0: float, edge1: float, x: float) -> float:
    t = min(max((x - edge0) / (edge1 - edge0), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def _lerp(a, b, t: float) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a + (b - a) * t


def daylight(env: ClipEnvironment) -> float:
    """0 at night (sun 6 deg below the horizon or lower), 1 in full daylight."""
    return _smoothstep(-6.0, 8.0, env.sun_elevation_deg)


@dataclass(frozen=True)
class Lighting:
    """Every light argument of getCameraImage, always passed explicitly.

    TinyRenderer keeps light settings between calls (a colour set once stays set), so leaving
    one out would make a frame depend on what was rendered before it.
    """

    direction: tuple[float, float, float]
    color: tuple[float, float, float]
    ambient: float
    diffuse: float
    specular: float
    shadow: bool

    def camera_image_kwargs(self) -> dict:
        return {
            "lightDirection": list(self.direction),
            "lightColor": list(self.color),
            "lightDistance": 100.0,
            "lightAmbientCoeff": self.ambient,
            "lightDiffuseCoeff": self.diffuse,
            "lightSpecularCoeff": self.specular,
            "shadow": 1 if self.shadow else 0,
        }


def sun_color(env: ClipEnvironment) -> np.ndarray:
    """Warm near the horizon, near white high up, greyer under clouds."""
    high = _smoothstep(0.0, 25.0, env.sun_elevation_deg)
    color = _lerp((1.0, 0.55, 0.30), (1.0, 0.97, 0.92), high)
    return _lerp(color, (0.90, 0.92, 0.95), env.cloudiness)


def lighting_for(env: ClipEnvironment, shadows: bool = False, extra_ambient: float | None = None) -> Lighting:
    """Direct sun and ambient sky light; at night both fall to (almost) nothing.

    `extra_ambient` is the manifest's `environment.ambient`: None keeps a faint night floor
    (0.01), a number replaces that floor (0 = a moonless night renders black).
    """
    day = daylight(env)
    sun_up = _smoothstep(-1.0, 4.0, env.sun_elevation_deg)
    overcast = env.cloudiness
    direct = sun_up * (0.80 - 0.68 * overcast) * (1.0 - 0.3 * env.rain)
    floor = 0.01 if extra_ambient is None else float(extra_ambient)
    ambient = floor + day * (0.34 + 0.14 * overcast) * (1.0 - 0.25 * env.rain)
    specular = day * (0.04 * (1.0 - overcast) + 0.02 * env.wetness)
    direction = env.sun_direction.copy()
    direction[2] = max(direction[2], 0.05)  # light below the horizon is switched off anyway
    return Lighting(
        direction=tuple(float(v) for v in direction),
        color=tuple(float(v) for v in sun_color(env)),
        ambient=float(ambient),
        diffuse=float(direct),
        specular=float(specular),
        shadow=bool(shadows and direct > 0.05),
    )


@dataclass(frozen=True)
class SkyColors:
    zenith: np.ndarray  # (3,) float, linear 0..1
    horizon: np.ndarray
    sun: np.ndarray


def sky_colors(env: ClipEnvironment) -> SkyColors:
    day = daylight(env)
    dusk = (1.0 - _smoothstep(0.0, 20.0, env.sun_elevation_deg)) * day
    zenith = _lerp((0.25, 0.45, 0.85), (0.20, 0.24, 0.50), dusk)
    horizon = _lerp((0.70, 0.82, 0.95), (0.95, 0.58, 0.32), dusk)
    grey = np.array([0.62, 0.64, 0.67])
    zenith = _lerp(zenith, grey * 0.9, env.cloudiness)
    horizon = _lerp(horizon, grey, env.cloudiness)
    brightness = day * (1.0 - 0.35 * env.cloudiness) * (1.0 - 0.25 * env.rain)
    night_zenith, night_horizon = np.array([0.004, 0.006, 0.015]), np.array([0.010, 0.012, 0.020])
    return SkyColors(
        zenith=night_zenith + zenith * brightness,
        horizon=night_horizon + horizon * brightness,
        sun=sun_color(env) * _smoothstep(-2.0, 2.0, env.sun_elevation_deg) * (1.0 - env.cloudiness),
    )


CLOUD_ALTITUDE_M = 1500.0
CLOUD_SCALE_M = 900.0  # size of one noise cell on the cloud layer


def shade_sky(rgb: np.ndarray, sky_mask: np.ndarray, ray_dirs: np.ndarray, env: ClipEnvironment, sky: SkyColors,
              noise=None) -> None:
    """Fill sky pixels (in place) with a zenith-horizon gradient, a sun glow and clouds.

    rgb: (H, W, 3) float32 0..1; ray_dirs: (H, W, 3) unit world directions. Clouds live on a
    flat layer 1.5 km up (so they stay put in the world as the camera turns) and cover about
    `cloudiness` of the sky; `noise` is a `textures.NoiseTable`.
    """
    if not sky_mask.any():
        return
    dirs = ray_dirs[sky_mask]  # (N, 3)
    up = np.sqrt(np.clip(dirs[:, 2], 0.0, 1.0))[:, None]
    colour = sky.horizon[None, :] * (1.0 - up) + sky.zenith[None, :] * up
    glow = np.clip(dirs @ env.sun_direction, 0.0, 1.0) ** 256
    colour = colour + glow[:, None] * sky.sun[None, :]
    if noise is not None and env.cloudiness > 0.0:
        elevation = np.maximum(dirs[:, 2], 0.02)
        u = dirs[:, 0] / elevation * (CLOUD_ALTITUDE_M / CLOUD_SCALE_M)
        v = dirs[:, 1] / elevation * (CLOUD_ALTITUDE_M / CLOUD_SCALE_M)
        density = 0.65 * noise.sample(u, v) + 0.35 * noise.sample(u * 2.7 + 17.0, v * 2.7 + 5.0)
        threshold = 1.0 - env.cloudiness
        cover = np.clip((density - threshold + 0.15) / 0.3, 0.0, 1.0) * np.clip(dirs[:, 2] / 0.08, 0.0, 1.0)
        cloud = (0.55 + 0.45 * (1.0 - env.cloudiness)) * max(daylight(env), 0.02) * np.ones(3)
        cloud = cloud + 0.25 * sky.sun  # lit by the sun: warm at dusk
        colour = colour * (1.0 - cover[:, None]) + cloud[None, :] * cover[:, None]
    rgb[sky_mask] = colour.astype(np.float32)


def apply_wetness(rgb: np.ndarray, ground_mask: np.ndarray, env: ClipEnvironment, sky: SkyColors) -> None:
    """Wet ground is darker and picks up a little sky reflection (in place)."""
    if env.wetness <= 0.0 or not ground_mask.any():
        return
    w = env.wetness
    rgb[ground_mask] = rgb[ground_mask] * (1.0 - 0.5 * w) + (0.03 * w) * sky.horizon.astype(np.float32)


def apply_fog(rgb: np.ndarray, distance: np.ndarray, env: ClipEnvironment, sky: SkyColors) -> None:
    """Blend toward the horizon colour by exp(-beta * distance); a light haze even on clear days."""
    beta = 0.0015 + 0.12 * env.fog**1.5 + 0.01 * env.rain
    transmittance = np.exp(-beta * distance).astype(np.float32)[..., None]
    fog_colour = sky.horizon.astype(np.float32)
    rgb *= transmittance
    rgb += (1.0 - transmittance) * fog_colour


def apply_rain(rgb: np.ndarray, env: ClipEnvironment, sky: SkyColors, rng: np.random.Generator) -> None:
    """Seeded slanted streaks, drawn as short lines of semi-transparent light grey (in place)."""
    if env.rain <= 0.0:
        return
    height, width = rgb.shape[:2]
    count = int(env.rain * width * height / 120)
    if count == 0:
        return
    length = max(3, height // 10)
    slant = 0.18
    x0 = rng.uniform(-length * slant, width, size=count)
    y0 = rng.uniform(-length, height, size=count)
    steps = np.arange(length, dtype=np.float64)
    xs = np.floor(x0[:, None] + steps[None, :] * slant).astype(np.int64).ravel()
    ys = np.floor(y0[:, None] + steps[None, :]).astype(np.int64).ravel()
    inside = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
    mask = np.zeros((height, width), dtype=bool)
    mask[ys[inside], xs[inside]] = True
    alpha = np.float32(0.18 + 0.22 * env.rain)
    streak = (0.35 + 0.65 * sky.horizon.astype(np.float32)).astype(np.float32) * np.float32(
        max(daylight(env), 0.05)
    )
    rgb[mask] = rgb[mask] * (1.0 - alpha) + alpha * streak
