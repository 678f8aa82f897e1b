//! One bounded cache type, for the tags read from the store and the answers of the upstream.

use std::collections::HashMap;
use std::sync::RwLock;

/// Values by package name, at most `capacity` of them; when a new name finds it full it starts over.
#[derive(Debug)]
pub(crate) struct Cache<V> {
    map: RwLock<HashMap<String, V>>,
    capacity: usize,
}

impl<V: Clone> Cache<V> {
    /// An empty cache of at most `capacity` entries.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            capacity,
        }
    }

    /// The value cached for `name`.
    pub(crate) fn get(&self, name: &str) -> Option<V> {
        self.map.read().ok()?.get(name).cloned()
    }

    /// Caches `value` for `name`, replacing what was there.
    pub(crate) fn insert(&self, name: &str, value: V) {
        let Ok(mut map) = self.map.write() else {
            return;
        };
        if map.len() >= self.capacity && !map.contains_key(name) {
            map.clear();
        }
        map.insert(name.to_owned(), value);
    }

    /// Forgets `name`.
    pub(crate) fn remove(&self, name: &str) {
        if let Ok(mut map) = self.map.write() {
            map.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_entries() {
        let cache = Cache::new(2);
        cache.insert("a", 1);
        cache.insert("b", 2);
        cache.insert("a", 3);
        assert_eq!((cache.get("a"), cache.get("b")), (Some(3), Some(2)));
        cache.insert("c", 4);
        assert_eq!(cache.get("c"), Some(4));
        assert_eq!((cache.get("a"), cache.get("b")), (None, None));
        cache.remove("c");
        assert_eq!(cache.get("c"), None);
    }
}
