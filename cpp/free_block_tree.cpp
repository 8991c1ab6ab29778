#include "free_block_tree.hpp"

#include <algorithm>
#include <stdexcept>

namespace memguard::sim {

std::int32_t FreeBlockTree::new_node(Addr address, Addr size) {
    // xorshift32: deterministic priorities keep every run reproducible.
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 17;
    rng_ ^= rng_ << 5;
    Node node{address, size, size, rng_, -1, -1};
    if (!spare_.empty()) {
        std::int32_t index = spare_.back();
        spare_.pop_back();
        nodes_[index] = node;
        return index;
    }
    if (nodes_.size() >= static_cast<std::size_t>(INT32_MAX)) {
        throw std::length_error("simulated allocator: too many free blocks");
    }
    nodes_.push_back(node);
    return static_cast<std::int32_t>(nodes_.size() - 1);
}

void FreeBlockTree::pull(std::int32_t n) {
    Node& node = nodes_[n];
    node.max_size = std::max({node.size, max_of(node.left), max_of(node.right)});
}

void FreeBlockTree::split(std::int32_t n, Addr address, std::int32_t& lo, std::int32_t& hi) {
    if (n < 0) {
        lo = hi = -1;
        return;
    }
    if (nodes_[n].address < address) {
        std::int32_t right_lo = -1;
        split(nodes_[n].right, address, right_lo, hi);
        nodes_[n].right = right_lo;
        lo = n;
    } else {
        std::int32_t left_hi = -1;
        split(nodes_[n].left, address, lo, left_hi);
        nodes_[n].left = left_hi;
        hi = n;
    }
    pull(n);
}

std::int32_t FreeBlockTree::merge(std::int32_t a, std::int32_t b) {
    if (a < 0) return b;
    if (b < 0) return a;
    if (nodes_[a].priority > nodes_[b].priority) {
        nodes_[a].right = merge(nodes_[a].right, b);
        pull(a);
        return a;
    }
    nodes_[b].left = merge(a, nodes_[b].left);
    pull(b);
    return b;
}

void FreeBlockTree::insert(Addr address, Addr size) {
    const std::int32_t node = new_node(address, size);  // may grow nodes_
    const std::uint32_t priority = nodes_[node].priority;
    // Descend while the heap order keeps the existing node above the new one,
    // then split the remaining subtree around the new node.
    path_.clear();
    std::int32_t* link = &root_;
    while (*link >= 0 && nodes_[*link].priority > priority) {
        path_.push_back(*link);
        Node& parent = nodes_[*link];
        link = address < parent.address ? &parent.left : &parent.right;
    }
    std::int32_t lo = -1;
    std::int32_t hi = -1;
    split(*link, address, lo, hi);
    nodes_[node].left = lo;
    nodes_[node].right = hi;
    pull(node);
    *link = node;
    refresh_path();
    ++count_;
}

void FreeBlockTree::erase(Addr address) {
    path_.clear();
    std::int32_t* link = &root_;
    while (*link >= 0 && nodes_[*link].address != address) {
        path_.push_back(*link);
        Node& parent = nodes_[*link];
        link = address < parent.address ? &parent.left : &parent.right;
    }
    if (*link < 0) {
        throw std::logic_error("simulated allocator: free block to erase is missing");
    }
    const std::int32_t node = *link;
    *link = merge(nodes_[node].left, nodes_[node].right);
    nodes_[node].size = 0;  // marks the slot unused for scan()
    spare_.push_back(node);
    --count_;
    refresh_path();
}

void FreeBlockTree::update(Addr address, Addr new_address, Addr new_size) {
    // Order is preserved, so the node keeps its place: change it and refresh
    // the subtree maxima on the way back up.
    path_.clear();
    std::int32_t n = root_;
    while (n >= 0 && nodes_[n].address != address) {
        path_.push_back(n);
        n = address < nodes_[n].address ? nodes_[n].left : nodes_[n].right;
    }
    if (n < 0) {
        throw std::logic_error("simulated allocator: free block to update is missing");
    }
    nodes_[n].address = new_address;
    nodes_[n].size = new_size;
    pull(n);
    refresh_path();
}

void FreeBlockTree::refresh_path() {
    for (auto it = path_.rbegin(); it != path_.rend(); ++it) pull(*it);
}

bool FreeBlockTree::lowest_fit(Addr size, FreeBlock& out) const {
    std::int32_t n = root_;
    if (max_of(n) < size) return false;
    while (n >= 0) {
        const Node& node = nodes_[n];
        if (max_of(node.left) >= size) {
            n = node.left;
        } else if (node.size >= size) {
            out = {node.address, node.size};
            return true;
        } else {
            n = node.right;
        }
    }
    return false;
}

bool FreeBlockTree::highest_fit(Addr size, FreeBlock& out) const {
    std::int32_t n = root_;
    if (max_of(n) < size) return false;
    while (n >= 0) {
        const Node& node = nodes_[n];
        if (max_of(node.right) >= size) {
            n = node.right;
        } else if (node.size >= size) {
            out = {node.address, node.size};
            return true;
        } else {
            n = node.left;
        }
    }
    return false;
}

bool FreeBlockTree::below(Addr address, FreeBlock& out) const {
    bool found = false;
    std::int32_t n = root_;
    while (n >= 0) {
        const Node& node = nodes_[n];
        if (node.address < address) {
            out = {node.address, node.size};
            found = true;
            n = node.right;
        } else {
            n = node.left;
        }
    }
    return found;
}

bool FreeBlockTree::at(Addr address, FreeBlock& out) const {
    std::int32_t n = root_;
    while (n >= 0) {
        const Node& node = nodes_[n];
        if (node.address == address) {
            out = {node.address, node.size};
            return true;
        }
        n = address < node.address ? node.left : node.right;
    }
    return false;
}

void FreeBlockTree::collect_from(std::int32_t n, std::vector<FreeBlock>& out) const {
    // Iterative in-order walk: the tree may be deep enough to matter.
    std::vector<std::int32_t> stack;
    while (n >= 0 || !stack.empty()) {
        while (n >= 0) {
            stack.push_back(n);
            n = nodes_[n].left;
        }
        n = stack.back();
        stack.pop_back();
        out.push_back({nodes_[n].address, nodes_[n].size});
        n = nodes_[n].right;
    }
}

void FreeBlockTree::scan(Addr& total, Addr& largest) const {
    total = 0;
    largest = 0;
    for (const Node& node : nodes_) {
        total += node.size;
        largest = std::max(largest, node.size);
    }
}

void FreeBlockTree::collect(std::vector<FreeBlock>& out) const { collect_from(root_, out); }

}  // namespace memguard::sim
