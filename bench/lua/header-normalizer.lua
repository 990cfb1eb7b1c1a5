-- Lua peer of header-normalizer's clean path (bench/envoy.ts): one pass over each header map,
-- looking for the singleton headers of the filter's built-in table; a second entry, or a
-- content-type holding a comma, is replaced by the first value.
local request_singletons = {
  ["content-type"] = true, ["content-length"] = true, [":authority"] = true, ["authorization"] = true,
  ["proxy-authorization"] = true, ["max-forwards"] = true, ["referer"] = true,
  ["if-modified-since"] = true, ["if-unmodified-since"] = true,
}
local response_singletons = {
  ["content-type"] = true, ["content-length"] = true, ["location"] = true, ["content-location"] = true,
  ["etag"] = true, ["last-modified"] = true, ["expires"] = true, ["date"] = true, ["age"] = true,
  ["retry-after"] = true, ["content-range"] = true,
}

local function normalize(headers, singletons)
  local first, count = {}, {}
  for name, value in pairs(headers) do
    if singletons[name] then
      if first[name] == nil then first[name] = value end
      count[name] = (count[name] or 0) + 1
    end
  end
  for name, value in pairs(first) do
    local cut = value
    if name == "content-type" then
      local comma = string.find(value, ",", 1, true)
      if comma then cut = string.sub(value, 1, comma - 1) end
    end
    if count[name] > 1 or cut ~= value then headers:replace(name, cut) end
  end
end

function envoy_on_request(handle) normalize(handle:headers(), request_singletons) end
function envoy_on_response(handle) normalize(handle:headers(), response_singletons) end
