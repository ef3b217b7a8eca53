"""Time of day and weather on an Unreal level. Game thread only.

The manifest's environment is renderer-neutral (sun angles, CARLA-style weather scalars in
[0, 1]); this module maps it onto the actors a UE5 outdoor level normally has:

| manifest                        | Unreal                                                                 |
| ------------------------------- | ---------------------------------------------------------------------- |
| sun.elevation_deg, azimuth_deg  | DirectionalLight rotation (atmosphere sun light); intensity fades at dusk |
| (sky)                           | SkyAtmosphere follows the sun light; SkyLight is recaptured              |
| weather.fog                     | ExponentialHeightFog `fog_density` = FOG_DENSITY_CLEAR + fog * FOG_DENSITY_RANGE |
| weather.cloudiness              | VolumetricCloud visible when > 0; MPC scalar `Cloudiness`               |
| weather.rain, weather.wetness   | MPC scalars `Rain`, `Wetness` (the level's materials/Niagara read them) |

MPC = the Material Parameter Collection `/Game/Worldloom/MPC_Weather` if the project has it:
levels opt in to rain, wet surfaces and cloud coverage by reading those scalars. A level
without one of the actors keeps its own look for that part; what was skipped is returned so the
server can log it.

Sun direction: worldloom's azimuth is a compass bearing towards the sun (0 = +Y, 90 = +X), so
the direction to the sun is (sin a cos e, cos a cos e, sin e) in the right-handed world. The
light travels the opposite way; in Unreal's left-handed frame (Y flipped) that is
(-sin a cos e, +cos a cos e, -sin e), i.e. Rotator(pitch = -e, yaw = atan2(cos a, -sin a)).
"""
from __future__ import annotations

import math
from typing import Any

from contract.clip import ClipEnvironment

WEATHER_COLLECTION = "/Game/Worldloom/MPC_Weather"
SUN_LUX_NOON = 10.0  # DirectionalLight intensity in lux-like editor units at full daylight
FOG_DENSITY_CLEAR = 0.002
FOG_DENSITY_RANGE = 0.25


def sun_rotator(elevation_deg: float, azimuth_deg: float) -> tuple[float, float, float]:
    """(roll, pitch, yaw) of a DirectionalLight shining from the given sun position."""
    a = math.radians(azimuth_deg)
    return 0.0, -elevation_deg, math.degrees(math.atan2(math.cos(a), -math.sin(a)))


def sun_intensity(elevation_deg: float, cloudiness: float) -> float:
    """Full light above ~10 degrees, fading to a moonlight floor below -6 degrees."""
    t = min(max((elevation_deg + 6.0) / 16.0, 0.0), 1.0)
    daylight = t * t * (3.0 - 2.0 * t)
    return SUN_LUX_NOON * (0.02 + 0.98 * daylight) * (1.0 - 0.6 * cloudiness)


def _first(unreal: Any, actors: list, actor_class: Any) -> Any:
    for actor in actors:
        if isinstance(actor, actor_class):
            return actor
    return None


def apply_environment(unreal: Any, environment: ClipEnvironment) -> list[str]:
    """Set sun, sky, fog, clouds and weather scalars; returns what the level lacked."""
    actors = unreal.get_editor_subsystem(unreal.EditorActorSubsystem).get_all_level_actors()
    missing: list[str] = []

    sun = _first(unreal, actors, unreal.DirectionalLight)
    if sun is None:
        missing.append("DirectionalLight (time of day)")
    else:
        roll, pitch, yaw = sun_rotator(environment.sun_elevation_deg, environment.sun_azimuth_deg)
        sun.set_actor_rotation(unreal.Rotator(roll, pitch, yaw), False)
        light = sun.get_component_by_class(unreal.DirectionalLightComponent)
        light.set_intensity(sun_intensity(environment.sun_elevation_deg, environment.cloudiness))
        light.set_editor_property("atmosphere_sun_light", True)

    if _first(unreal, actors, unreal.SkyAtmosphere) is None:
        missing.append("SkyAtmosphere (sky colour)")

    fog = _first(unreal, actors, unreal.ExponentialHeightFog)
    if fog is None:
        if environment.fog > 0:
            missing.append("ExponentialHeightFog (weather.fog)")
    else:
        component = fog.get_component_by_class(unreal.ExponentialHeightFogComponent)
        component.set_fog_density(FOG_DENSITY_CLEAR + environment.fog * FOG_DENSITY_RANGE)

    clouds = _first(unreal, actors, unreal.VolumetricCloud)
    if clouds is None:
        if environment.cloudiness > 0:
            missing.append("VolumetricCloud (weather.cloudiness)")
    else:
        clouds.get_component_by_class(unreal.VolumetricCloudComponent).set_visibility(environment.cloudiness > 0.0, False)

    collection = unreal.load_asset(WEATHER_COLLECTION) if unreal.EditorAssetLibrary.does_asset_exist(WEATHER_COLLECTION) else None
    if collection is None:
        if environment.rain > 0 or environment.wetness > 0:
            missing.append(f"{WEATHER_COLLECTION} (weather.rain, weather.wetness)")
    else:
        world = unreal.get_editor_subsystem(unreal.UnrealEditorSubsystem).get_editor_world()
        # Setting a parameter the collection lacks makes the engine log an error and do nothing;
        # ask the collection what it has and report the rest as missing instead.
        declared = {str(parameter.get_editor_property("parameter_name")) for parameter in collection.get_editor_property("scalar_parameters")}
        for name, value in (("Cloudiness", environment.cloudiness), ("Rain", environment.rain), ("Wetness", environment.wetness), ("Fog", environment.fog)):
            if name in declared:
                unreal.MaterialLibrary.set_scalar_parameter_value(world, collection, name, float(value))
            else:
                missing.append(f"scalar parameter {name!r} in {WEATHER_COLLECTION}")

    # The sky light caches the sky; after moving the sun it must look again.
    sky_light = _first(unreal, actors, unreal.SkyLight)
    if sky_light is None:
        missing.append("SkyLight (ambient light)")
    else:
        sky_light.get_component_by_class(unreal.SkyLightComponent).recapture_sky()
    return missing
