"""partition_of picks the partition Kafka's default partitioner (murmur2) gives a key."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from services.runtime.bus import murmur2, partition_of


@given(key=st.binary(min_size=1, max_size=40), n=st.integers(min_value=1, max_value=64))
def test_partition_of_agrees_with_the_default_partitioner(key: bytes, n: int) -> None:
    partitions = list(range(n))
    assert partition_of(key, partitions) == DefaultPartitioner()(key, partitions, partitions)


@given(key=st.binary(max_size=300))
def test_murmur2_agrees_with_aiokafkas(key: bytes) -> None:
    assert murmur2(key) == aiokafka_murmur2(key)


#: Java's Utils.murmur2 of these keys (Kafka's UtilsTest): the producer must agree with it, or
#: a lead's events would land on another partition than other clients expect.
JAVA_MURMUR2 = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
                b"abc": 479470107}


def test_partitions_follow_javas_murmur2() -> None:
    for key, signed in JAVA_MURMUR2.items():
        for n in (1, 3, 12, 24):
            assert partition_of(key, list(range(n))) == (signed & 0x7FFFFFFF) % n
