#include "gpu/context.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <utility>

namespace ember::gpu {

namespace {

// An instance that destroys itself unless handed over to a Context.
struct InstanceHandle {
  VulkanFunctions vk;
  VkInstance instance = VK_NULL_HANDLE;
  InstanceHandle() = default;
  InstanceHandle(const InstanceHandle&) = delete;
  InstanceHandle& operator=(const InstanceHandle&) = delete;
  ~InstanceHandle() {
    if (instance != VK_NULL_HANDLE) vk.vkDestroyInstance(instance, nullptr);
  }
  VkInstance release() { return std::exchange(instance, VK_NULL_HANDLE); }
};

Status create_instance(InstanceHandle& handle) {
  EMBER_GPU_RETURN_IF_ERROR(load_global_functions(handle.vk));
  uint32_t loader_version = 0;
  EMBER_GPU_RETURN_IF_ERROR(vk_check(handle.vk.vkEnumerateInstanceVersion(&loader_version), "vkEnumerateInstanceVersion"));
  if (loader_version < VK_API_VERSION_1_2)
    return {ErrorKind::unavailable, "the Vulkan loader supports " + std::to_string(VK_API_VERSION_MAJOR(loader_version)) +
                                        "." + std::to_string(VK_API_VERSION_MINOR(loader_version)) + "; 1.2 is needed"};
  VkApplicationInfo application{VK_STRUCTURE_TYPE_APPLICATION_INFO};
  application.pApplicationName = "ember";
  application.pEngineName = "ember";
  application.apiVersion = std::min<uint32_t>(loader_version, VK_API_VERSION_1_3);
  VkInstanceCreateInfo info{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
  info.pApplicationInfo = &application;
  const VkResult created = handle.vk.vkCreateInstance(&info, nullptr, &handle.instance);
  if (created == VK_ERROR_INCOMPATIBLE_DRIVER)
    return {ErrorKind::unavailable, "the Vulkan loader found no driver (vkCreateInstance: VK_ERROR_INCOMPATIBLE_DRIVER)"};
  EMBER_GPU_RETURN_IF_ERROR(vk_check(created, "vkCreateInstance"));
  return load_instance_functions(handle.vk, handle.instance);
}

Result<std::vector<VkPhysicalDevice>> physical_devices(const InstanceHandle& handle) {
  uint32_t count = 0;
  EMBER_GPU_RETURN_IF_ERROR(
      vk_check(handle.vk.vkEnumeratePhysicalDevices(handle.instance, &count, nullptr), "vkEnumeratePhysicalDevices"));
  std::vector<VkPhysicalDevice> devices(count);
  EMBER_GPU_RETURN_IF_ERROR(vk_check(handle.vk.vkEnumeratePhysicalDevices(handle.instance, &count, devices.data()),
                                     "vkEnumeratePhysicalDevices"));
  devices.resize(count);
  if (devices.empty()) return Status{ErrorKind::unavailable, "the Vulkan loader reports no physical device"};
  return devices;
}

// The explicit choice (option, then EMBER_VK_DEVICE), or none for "pick the best".
Result<std::optional<uint32_t>> requested_index(const ContextOptions& options, size_t device_count) {
  std::optional<uint32_t> index = options.device_index;
  std::string source = "device index";
  if (!index) {
    if (const char* text = std::getenv("EMBER_VK_DEVICE"); text != nullptr && *text != '\0') {
      char* end = nullptr;
      const unsigned long value = std::strtoul(text, &end, 10);
      if (*end != '\0' || text[0] == '-' || value > UINT32_MAX)
        return Status{ErrorKind::invalid_argument, std::string("EMBER_VK_DEVICE='") + text + "': a device number"};
      index = static_cast<uint32_t>(value);
      source = "EMBER_VK_DEVICE";
    }
  }
  if (index && *index >= device_count)
    return Status{ErrorKind::invalid_argument, source + " " + std::to_string(*index) + ": there are " +
                                                   std::to_string(device_count) + " Vulkan devices (0.." +
                                                   std::to_string(device_count - 1) + ")"};
  return index;
}

}  // namespace

Status vk_check(VkResult result, const char* what) {
  if (result == VK_SUCCESS) return {};
  const ErrorKind kind = result == VK_ERROR_OUT_OF_DEVICE_MEMORY || result == VK_ERROR_OUT_OF_HOST_MEMORY
                             ? ErrorKind::out_of_memory
                         : result == VK_ERROR_INCOMPATIBLE_DRIVER || result == VK_ERROR_INITIALIZATION_FAILED
                             ? ErrorKind::unavailable
                             : ErrorKind::device_error;
  return {kind, std::string(what) + " failed: " + result_name(result)};
}

Result<std::vector<DeviceCapabilities>> Context::list_devices() {
  InstanceHandle handle;
  EMBER_GPU_RETURN_IF_ERROR(create_instance(handle));
  auto devices = physical_devices(handle);
  if (!devices) return devices.status();
  std::vector<DeviceCapabilities> records;
  for (uint32_t i = 0; i < devices->size(); ++i) records.push_back(query_capabilities(handle.vk, (*devices)[i], i));
  return records;
}

Result<std::unique_ptr<Context>> Context::create(const ContextOptions& options) {
  InstanceHandle handle;
  EMBER_GPU_RETURN_IF_ERROR(create_instance(handle));
  auto devices = physical_devices(handle);
  if (!devices) return devices.status();
  auto requested = requested_index(options, devices->size());
  if (!requested) return requested.status();

  std::vector<DeviceCapabilities> records;
  for (uint32_t i = 0; i < devices->size(); ++i) records.push_back(query_capabilities(handle.vk, (*devices)[i], i));
  const DeviceCapabilities* chosen = nullptr;
  if (requested.value()) {
    chosen = &records[*requested.value()];
    if (!chosen->meets_minimum())
      return Status{ErrorKind::unavailable,
                    "Vulkan device " + std::to_string(chosen->index) + " (" + chosen->name + "): " + chosen->shortcoming()};
  } else {
    for (const DeviceCapabilities& record : records)
      if (record.meets_minimum() &&
          (chosen == nullptr || device_type_rank(record.type) < device_type_rank(chosen->type)))
        chosen = &record;
    if (chosen == nullptr)
      return Status{ErrorKind::unavailable,
                    "no usable Vulkan device (" + records.front().name + ": " + records.front().shortcoming() + ")"};
  }

  std::unique_ptr<Context> context(new Context());
  context->vk_ = handle.vk;
  context->instance_ = handle.release();
  context->physical_device_ = (*devices)[chosen->index];
  context->capabilities_ = *chosen;
  const VulkanFunctions& vk = context->vk_;

  const float priority = 1.0f;
  VkDeviceQueueCreateInfo queue_info{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
  queue_info.queueFamilyIndex = chosen->compute_queue_family;
  queue_info.queueCount = 1;
  queue_info.pQueuePriorities = &priority;
  std::vector<const char*> extensions;
  if (chosen->memory_budget) extensions.push_back(VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
  VkDeviceCreateInfo device_info{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
  // The tensor-core GEMM's features, only where all of them are there to enable.
  VkPhysicalDeviceShaderFloat16Int8Features float16{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
  VkPhysicalDeviceVulkanMemoryModelFeatures memory_model{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_MEMORY_MODEL_FEATURES,
                                                         &float16};
  VkPhysicalDeviceCooperativeMatrixFeaturesNV cooperative{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV,
                                                          &memory_model};
  if (chosen->fp16_cooperative_matrix()) {
    extensions.push_back(VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);
    float16.shaderFloat16 = VK_TRUE;
    memory_model.vulkanMemoryModel = VK_TRUE;
    cooperative.cooperativeMatrix = VK_TRUE;
    device_info.pNext = &cooperative;
  }
  device_info.queueCreateInfoCount = 1;
  device_info.pQueueCreateInfos = &queue_info;
  device_info.enabledExtensionCount = static_cast<uint32_t>(extensions.size());
  device_info.ppEnabledExtensionNames = extensions.data();
  EMBER_GPU_RETURN_IF_ERROR(
      vk_check(vk.vkCreateDevice(context->physical_device_, &device_info, nullptr, &context->device_), "vkCreateDevice"));
  EMBER_GPU_RETURN_IF_ERROR(load_device_functions(context->vk_, context->device_));
  vk.vkGetDeviceQueue(context->device_, chosen->compute_queue_family, 0, &context->queue_);

  VkCommandPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  pool_info.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
  pool_info.queueFamilyIndex = chosen->compute_queue_family;
  EMBER_GPU_RETURN_IF_ERROR(vk_check(vk.vkCreateCommandPool(context->device_, &pool_info, nullptr,
                                                            &context->command_pool_), "vkCreateCommandPool"));
  VkCommandBufferAllocateInfo allocate_info{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  allocate_info.commandPool = context->command_pool_;
  allocate_info.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  allocate_info.commandBufferCount = kMostPieces;
  EMBER_GPU_RETURN_IF_ERROR(vk_check(
      vk.vkAllocateCommandBuffers(context->device_, &allocate_info, context->piece_commands_.data()),
      "vkAllocateCommandBuffers"));
  VkFenceCreateInfo fence_info{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  for (VkFence& fence : context->piece_fences_)
    EMBER_GPU_RETURN_IF_ERROR(
        vk_check(vk.vkCreateFence(context->device_, &fence_info, nullptr, &fence), "vkCreateFence"));
  return context;
}

Context::~Context() {
  if (device_ != VK_NULL_HANDLE) {
    vk_.vkDeviceWaitIdle(device_);
    for (VkFence fence : piece_fences_)
      if (fence != VK_NULL_HANDLE) vk_.vkDestroyFence(device_, fence, nullptr);
    if (timestamp_pool_ != VK_NULL_HANDLE) vk_.vkDestroyQueryPool(device_, timestamp_pool_, nullptr);
    if (command_pool_ != VK_NULL_HANDLE) vk_.vkDestroyCommandPool(device_, command_pool_, nullptr);
    vk_.vkDestroyDevice(device_, nullptr);
  }
  if (instance_ != VK_NULL_HANDLE) vk_.vkDestroyInstance(instance_, nullptr);
}

Status Context::submit(VkCommandBuffer commands, VkFence fence) {
  VkSubmitInfo info{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  info.commandBufferCount = 1;
  info.pCommandBuffers = &commands;
  std::lock_guard lock(queue_mutex_);
  submissions_.fetch_add(1, std::memory_order_relaxed);
  const VkResult injected = faults_.take(InjectedFault::device_lost);
  return check_device(injected != VK_SUCCESS ? injected : vk_.vkQueueSubmit(queue_, 1, &info, fence), "vkQueueSubmit");
}

Status Context::check_device(VkResult result, const char* what) {
  if (result == VK_ERROR_DEVICE_LOST) device_lost_.store(true, std::memory_order_relaxed);
  return vk_check(result, what);
}

Status Context::Pieces::begin() {
  VkCommandBufferBeginInfo begin{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  EMBER_GPU_RETURN_IF_ERROR(vk_check(context_.vk_.vkBeginCommandBuffer(context_.piece_commands_[begun_], &begin),
                                     "vkBeginCommandBuffer"));
  ++begun_;
  return {};
}

Status Context::Pieces::submit(uint32_t piece) {
  const VulkanFunctions& vk = context_.vk_;
  EMBER_GPU_RETURN_IF_ERROR(vk_check(vk.vkEndCommandBuffer(context_.piece_commands_[piece]), "vkEndCommandBuffer"));
  EMBER_GPU_RETURN_IF_ERROR(
      vk_check(vk.vkResetFences(context_.device_, 1, &context_.piece_fences_[piece]), "vkResetFences"));
  EMBER_GPU_RETURN_IF_ERROR(context_.submit(context_.piece_commands_[piece], context_.piece_fences_[piece]));
  submitted_ = piece + 1;
  return {};
}

void Context::Pieces::next_piece() {
  if (!status_.ok() || begun_ == kMostPieces) return;
  // The next buffer is begun before this one goes, so commands() is always a buffer in
  // the recording state: after a failure here the caller's commands land in a buffer
  // that is never submitted.
  status_ = begin();
  if (status_.ok()) status_ = submit(begun_ - 2);
}

Status Context::run_pieces_and_wait(const std::function<void(Pieces&)>& record) {
  std::lock_guard lock(run_mutex_);
  Pieces pieces(*this);
  pieces.status_ = pieces.begin();
  if (!pieces.status_.ok()) return pieces.status_;
  record(pieces);
  if (pieces.status_.ok())
    pieces.status_ = pieces.submit(pieces.begun_ - 1);
  else
    vk_.vkEndCommandBuffer(piece_commands_[pieces.begun_ - 1]);  // reusable again; its result no longer matters
  // Whatever went, even before a failure, is waited for: its command buffers are reused.
  if (pieces.submitted_ > 0) {
    const Status waited = wait_for_pieces(pieces.submitted_);
    if (pieces.status_.ok()) pieces.status_ = waited;
  }
  return pieces.status_;
}

Status Context::wait_for_pieces(uint32_t count) {
  // A GPU is polled for a while before the thread sleeps: on the H200 the host took 55 us
  // from submitting one tiny dispatch to its return from the wait, 7 us of it the
  // device's (bench-gpu BM_BatchHostCost). A CPU implementation is not polled: the
  // polling thread would take a core from the device's own threads.
  constexpr std::chrono::milliseconds kPolling{2};
  if (capabilities_.type != VK_PHYSICAL_DEVICE_TYPE_CPU) {
    const auto until = std::chrono::steady_clock::now() + kPolling;
    while (std::chrono::steady_clock::now() < until) {
      const VkResult status = vk_.vkGetFenceStatus(device_, piece_fences_[count - 1]);
      if (status == VK_SUCCESS) break;
      if (status != VK_NOT_READY) return check_device(status, "vkGetFenceStatus");
    }
  }
  return check_device(vk_.vkWaitForFences(device_, count, piece_fences_.data(), VK_TRUE, UINT64_MAX),
                      "vkWaitForFences");
}

Status Context::run_and_wait(const std::function<void(VkCommandBuffer)>& record) {
  return run_pieces_and_wait([&](Pieces& pieces) { record(pieces.commands()); });
}

Result<double> Context::run_and_time(const std::function<void(VkCommandBuffer)>& record) {
  return run_pieces_and_time([&](Pieces& pieces) { record(pieces.commands()); });
}

Result<double> Context::run_pieces_and_time(const std::function<void(Pieces&)>& record) {
  auto seconds = run_and_time_steps(1, [&](Pieces& pieces, const StepMarker& mark) {
    record(pieces);
    mark(0);
  });
  if (!seconds) return seconds.status();
  return seconds.value().front();
}

Result<std::vector<double>> Context::run_and_time_steps(
    uint32_t steps, const std::function<void(Pieces&, const StepMarker&)>& record) {
  if (capabilities_.timestamp_valid_bits == 0)
    return Status{ErrorKind::unavailable, capabilities_.name + " has no timestamps on its compute queue"};
  std::lock_guard lock(timestamp_mutex_);
  const uint32_t queries = steps + 1;
  if (timestamp_queries_ < queries) {
    if (timestamp_pool_ != VK_NULL_HANDLE) vk_.vkDestroyQueryPool(device_, timestamp_pool_, nullptr);
    timestamp_pool_ = VK_NULL_HANDLE;
    timestamp_queries_ = 0;
    VkQueryPoolCreateInfo info{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
    info.queryType = VK_QUERY_TYPE_TIMESTAMP;
    info.queryCount = queries;
    EMBER_GPU_RETURN_IF_ERROR(
        vk_check(vk_.vkCreateQueryPool(device_, &info, nullptr, &timestamp_pool_), "vkCreateQueryPool"));
    timestamp_queries_ = queries;
  }
  EMBER_GPU_RETURN_IF_ERROR(run_pieces_and_wait([&](Pieces& pieces) {
    vk_.vkCmdResetQueryPool(pieces.commands(), timestamp_pool_, 0, queries);
    vk_.vkCmdWriteTimestamp(pieces.commands(), VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, timestamp_pool_, 0);
    record(pieces, [&](uint32_t step) {
      vk_.vkCmdWriteTimestamp(pieces.commands(), VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, timestamp_pool_, step + 1);
    });
  }));
  std::vector<uint64_t> ticks(queries);
  EMBER_GPU_RETURN_IF_ERROR(check_device(
      vk_.vkGetQueryPoolResults(device_, timestamp_pool_, 0, queries, ticks.size() * sizeof ticks[0], ticks.data(),
                                sizeof ticks[0], VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
      "vkGetQueryPoolResults"));
  const unsigned bits = capabilities_.timestamp_valid_bits;
  const uint64_t mask = bits >= 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
  std::vector<double> seconds(steps);
  for (uint32_t step = 0; step < steps; ++step)
    seconds[step] = static_cast<double>((ticks[step + 1] - ticks[step]) & mask) * capabilities_.timestamp_period_ns * 1e-9;
  return seconds;
}

}  // namespace ember::gpu
