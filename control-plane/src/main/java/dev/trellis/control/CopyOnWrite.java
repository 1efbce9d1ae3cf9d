package dev.trellis.control;

import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;

/**
 * Updated copies of immutable collections. Entity state must stay immutable: the snapshot store
 * serializes it off the entity's thread.
 */
public final class CopyOnWrite {

  private CopyOnWrite() {}

  public static <K, V> Map<K, V> with(Map<K, V> map, K key, V value) {
    Map<K, V> copy = new HashMap<>(map);
    copy.put(key, value);
    return Map.copyOf(copy);
  }

  public static <K, V> Map<K, V> without(Map<K, V> map, K key) {
    Map<K, V> copy = new HashMap<>(map);
    copy.remove(key);
    return Map.copyOf(copy);
  }

  public static <T> Set<T> with(Set<T> set, T element) {
    Set<T> copy = new HashSet<>(set);
    copy.add(element);
    return Set.copyOf(copy);
  }

  public static <T> Set<T> without(Set<T> set, T element) {
    Set<T> copy = new HashSet<>(set);
    copy.remove(element);
    return Set.copyOf(copy);
  }
}
