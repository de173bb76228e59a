"""How a training model finds its networks and policy head, and saves them.

`resolve_networks` checks the two layouts (`actor` and `critic`, or one
`shared` network) and finds the PolicyHead; `config_entries` and
`restored_entries` write and read them in a model's Keras config.

Letters used in shapes: `B` rows, `T` steps per row, `N = B * T`.
"""

from __future__ import annotations

from typing import Any
from typing import NamedTuple
from typing import Optional

import keras

from keras_gae._src import dependencies
from keras_gae._src import private_apis
from keras_gae.layers import PolicyHead


class Networks(NamedTuple):
    """The checked networks of an actor-critic model."""

    actor: Optional[keras.layers.Layer]
    critic: Optional[keras.layers.Layer]
    shared: Optional[keras.layers.Layer]
    policy_head: PolicyHead
    # Whether the head is applied to the policy network's output (which
    # then holds features), rather than being one of its layers.
    apply_policy_head: bool


def policy_heads_inside(network: keras.layers.Layer) -> list:
    """The distinct PolicyHead layers of `network` (itself included)."""
    heads = []
    for module in private_apis.flatten_layers(network):
        if isinstance(module, PolicyHead) and all(
            module is not head for head in heads
        ):
            heads.append(module)
    return heads


def resolve_networks(
    actor: Any, critic: Any, shared: Any, policy_head: Any
) -> Networks:
    """Checks the networks of `ActorCriticModel` and finds the policy head.

    Raises:
      TypeError: a network that is not a Keras 3 layer or model (a tf-keras
        one gets its own message), a head that is not a PolicyHead.
      ValueError: both layouts given, a missing network, no or several
        heads without `policy_head` to choose.
    """
    named = {"actor": actor, "critic": critic, "shared": shared}
    for name, network in named.items():
        if network is not None:
            dependencies.check_layer(network, name)
    if policy_head is not None and not isinstance(policy_head, PolicyHead):
        raise TypeError(
            "`policy_head` must be a keras_gae PolicyHead (e.g. "
            f"CategoricalPolicyHead). Received: policy_head={policy_head!r}"
        )
    if shared is not None:
        if actor is not None or critic is not None:
            raise ValueError(
                "Pass either `shared` (a network returning (params, "
                "value)) or `actor` and `critic`, not both. Received: "
                f"actor={actor!r}, critic={critic!r}, shared={shared!r}"
            )
        policy_network, network_name = shared, "shared"
    else:
        for name in ("actor", "critic"):
            if named[name] is None:
                raise ValueError(
                    f"`{name}` is required unless `shared` is given. "
                    f"Received: {name}=None"
                )
        policy_network, network_name = actor, "actor"

    heads = policy_heads_inside(policy_network)
    if policy_head is None:
        if len(heads) != 1:
            found = "no PolicyHead" if not heads else f"{len(heads)} heads"
            raise ValueError(
                f"`{network_name}` holds {found}; end it with a "
                "PolicyHead (e.g. CategoricalPolicyHead) or pass "
                "`policy_head=` (applied to its output). "
                f"Received: {network_name}={policy_network!r}"
            )
        return Networks(actor, critic, shared, heads[0], False)
    if any(policy_head is head for head in heads):
        return Networks(actor, critic, shared, policy_head, False)
    if heads:
        raise ValueError(
            f"`policy_head` is not among the PolicyHeads of "
            f"`{network_name}`, which already holds {len(heads)}; pass "
            "one of those, or a torso without a head. "
            f"Received: policy_head={policy_head!r}"
        )
    return Networks(actor, critic, shared, policy_head, True)


def serialize(obj: Any) -> Any:
    """A Keras config of `obj` (a layer, model or controller), or None."""
    if obj is None:
        return None
    return keras.saving.serialize_keras_object(obj)


def deserialize(config: Any, custom_objects: Any = None) -> Any:
    """The object `serialize` described, or None."""
    if config is None:
        return None
    return keras.saving.deserialize_keras_object(
        config, custom_objects=custom_objects
    )


def policy_head_config(networks: Networks) -> Any:
    """How a config records the head: its config, its name, or None.

    A head inside the network is restored with it; its name picks it out
    when the network holds several.
    """
    if networks.apply_policy_head:
        return serialize(networks.policy_head)
    network = networks.actor if networks.shared is None else networks.shared
    if len(policy_heads_inside(network)) > 1:
        return networks.policy_head.name
    return None


def restore_policy_head(config: Any, network: Any, custom_objects: Any) -> Any:
    """The head `policy_head_config` recorded, given the restored network."""
    if isinstance(config, str):
        by_name = {h.name: h for h in policy_heads_inside(network)}
        return by_name[config]
    return deserialize(config, custom_objects)


def config_entries(networks: Networks) -> dict:
    """The networks' entries of a model's config (Keras configs or None)."""
    return {
        "actor": serialize(networks.actor),
        "critic": serialize(networks.critic),
        "shared": serialize(networks.shared),
        "policy_head": policy_head_config(networks),
    }


def serialize_kl_coef(kl_coef: Any) -> Any:
    """A KL coefficient for a config: None, a float, or a controller's."""
    if kl_coef is None or isinstance(kl_coef, float):
        return kl_coef
    return serialize(kl_coef)


def restored_entries(config: dict, custom_objects: Any = None) -> dict:
    """A model's config with its networks, head and controller restored."""
    config = dict(config)
    for key in ("actor", "critic", "shared"):
        config[key] = deserialize(config.get(key), custom_objects)
    config["policy_head"] = restore_policy_head(
        config.get("policy_head"),
        config["shared"] or config["actor"],
        custom_objects,
    )
    if isinstance(config.get("kl_coef"), dict):
        config["kl_coef"] = deserialize(config["kl_coef"], custom_objects)
    return config
