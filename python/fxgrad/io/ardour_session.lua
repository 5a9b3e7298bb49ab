-- Builds an Ardour 7 session in ardour7-lua (Ardour's own Lua session interpreter), so that every
-- byte of the .ardour file is written by Ardour itself. fxgrad.io.session puts a table SPEC in
-- front of this text: the session folder, name, rate and channel count, the audio files it staged,
-- the XML of the source, region and session-range elements (times as @@T:SAMPLES@@), and the
-- plugins with the values and automation points of their parameters. Progress and findings are
-- printed as tab-separated lines starting with "fxgrad"; the last one is "fxgrad done".
--
-- Ardour 7.3's Lua API cannot import a file headless (that is the editor's), so the audio goes in
-- as Ardour's own importer would leave it: mono float WAVs in interchange/NAME/audiofiles/, one
-- Source each, a whole-file Region and its copy on the track's playlist. They are written into
-- the saved session file, which Ardour then loads and checks like any session.

io.stdout:setvbuf("no")

local function report(...)
  print(table.concat({"fxgrad", ...}, "\t"))
end

local function fail(message)
  print("fxgrad\terror\t" .. message)
  os.exit(3)
end

local function replace_once(text, old, new)
  local first, last = string.find(text, old, 1, true)
  if not first then fail("Ardour's session file has no " .. old) end
  return string.sub(text, 1, first - 1) .. new .. string.sub(text, last + 1)
end

local function save(session)
  if session:save_state("", false, false, false, false, false) ~= 0 then
    fail("Ardour could not save the session in " .. SPEC.dir)
  end
end

-- 1. A session with one track (the master bus is stereo), saved and closed.
local session = create_session(SPEC.dir, SPEC.name, SPEC.rate)
if not session then fail("Ardour could not create a " .. SPEC.rate .. " Hz session in " .. SPEC.dir) end
local track = session:new_audio_track(SPEC.channels, SPEC.channels, nil, 1, SPEC.track,
  ARDOUR.PresentationInfo.max_order, ARDOUR.TrackMode.Normal, false):front()
save(session)
close_session()

-- 2. The audio into the session's folder, and its sources, regions and range into the file.
local audiofiles = SPEC.dir .. "/interchange/" .. SPEC.folder .. "/audiofiles/"
for _, file in ipairs(SPEC.audio_files) do
  local moved, why = os.rename(SPEC.staging .. "/" .. file, audiofiles .. file)
  if not moved then fail("cannot move " .. file .. " into " .. audiofiles .. ": " .. tostring(why)) end
end
local per_sample = Temporal.superclock_ticks_per_second() // SPEC.rate
local function timed(text)
  return (string.gsub(text, "@@T:(%d+)@@", function(samples) return "a" .. (tonumber(samples) * per_sample) end))
end
local path = SPEC.dir .. "/" .. SPEC.name .. ".ardour"
local handle = assert(io.open(path, "r"))
local xml = handle:read("a")
handle:close()
xml = replace_once(xml, "<Sources/>", timed(SPEC.sources_xml))
xml = replace_once(xml, "<Regions/>", timed(SPEC.regions_xml))
xml = replace_once(xml, "<Locations/>", timed(SPEC.locations_xml))
-- The track's playlist: the <Playlist .../> element named after the track (it holds nothing yet).
local first, close = 0, nil
repeat
  first = string.find(xml, "<Playlist ", first + 1, true)
  if not first then fail("Ardour's session file has no playlist for the track " .. SPEC.track) end
  close = string.find(xml, ">", first, true)
until string.find(string.sub(xml, first, close), ' name="' .. SPEC.track .. '" ', 1, true)
if string.sub(xml, close - 1, close) ~= "/>" then fail("the track's playlist is not empty") end
xml = string.sub(xml, 1, close - 2) .. ">" .. timed(SPEC.playlist_xml) .. "</Playlist>" .. string.sub(xml, close + 1)
handle = assert(io.open(path, "w"))
handle:write(xml)
handle:close()

-- 3. Loaded back as Ardour loads any session: the region must read as the audio fxgrad wrote.
session = load_session(SPEC.dir, SPEC.name)
if not session then fail("Ardour could not load the session it wrote in " .. SPEC.dir) end
track = session:route_by_name(SPEC.track)
local playlist = track:to_track():playlist()
if playlist:n_regions() ~= 1 then fail("the track holds " .. playlist:n_regions() .. " regions, not 1") end
local region
for each in playlist:region_list():iter() do region = each end
report("region", tostring(region:length():samples()), tostring(region:to_audioregion():maximum_amplitude(nil)))

-- 4. No declick when the transport starts or stops (a fade fxgrad's render does not have).
session:cfg():set_use_transport_fades(false)

-- A value in Ardour's units for the control. VST3 and VST2 values come normalised: Ardour keeps
-- a VST3 parameter in the plugin's own plain units, between the plain values the plugin gives for
-- 0 and 1 (JUCE-built plugins give 0 and 1 themselves), VST2 ones as they are (0 to 1).
local function in_ardour_units(control, value, normalised)
  if not normalised then return value end
  local range = control:desc()
  return range.lower + value * (range.upper - range.lower)
end

-- A normalised value must land where the plugin itself shows it: a plugin whose plain scale is
-- not linear between those ends (or not the one it shows) is refused rather than mis-set.
local function check_scale(plugin, value, control)
  local range = control:desc()
  if not value.shown or (range.lower == 0 and range.upper == 1) then return end
  local landed = in_ardour_units(control, value.value, true)
  if math.abs(landed - value.shown) > 0.01 * math.abs(range.upper - range.lower) + 1e-6 then
    fail(plugin.name .. ": '" .. value.label .. "' at " .. value.shown .. " (as the plugin shows it) would be "
      .. landed .. " in Ardour, whose scale for it runs " .. range.lower .. " to " .. range.upper)
  end
end

-- 5. The chain, in order, before the fader; every value fxgrad set, and the automation lanes.
for index, plugin in ipairs(SPEC.plugins) do
  local processor = ARDOUR.LuaAPI.new_plugin_with_time_domain(session, plugin.id, ARDOUR.PluginType[plugin.type],
    Temporal.TimeDomain.AudioTime, "")
  if processor:isnil() then fail("Ardour found no " .. plugin.type .. " plugin " .. plugin.id) end
  if track:add_processor_by_index(processor, index - 1, nil, true) ~= 0 then
    fail("Ardour could not insert " .. plugin.name .. " on the track")
  end
  local insert = processor:to_insert()
  local instance = insert:plugin(0)
  report("plugin", tostring(index), tostring(insert:get_count()), tostring(instance:get_info().path),
    tostring(insert:input_streams():n_audio()), tostring(insert:output_streams():n_audio()))
  -- Every parameter Ardour can set, by its label: LV2 control ports and LV2 patch properties
  -- (how JUCE-built LV2 plugins declare theirs), VST3, VST2 and LADSPA parameters alike.
  local automatable = insert:to_automatable()
  local controls, labels = {}, {}
  for parameter in automatable:all_automatable_params():iter() do
    local control = automatable:automation_control(parameter, false)
    if not control:isnil() then
      local label = control:desc().label
      if not controls[label] then
        controls[label] = {}
        table.insert(labels, label)
      end
      table.insert(controls[label], control)
    end
  end
  for _, value in ipairs(plugin.values) do
    local control = (controls[value.label] or {})[value.occurrence]
    if not control and value.required then
      fail(plugin.name .. " has no parameter '" .. value.label .. "' that Ardour can set (it has: "
        .. table.concat(labels, ", ") .. ")")
    end
    if not control then
      report("skipped", tostring(index), value.label)
      goto next_value
    end
    check_scale(plugin, value, control)
    control:set_value(in_ardour_units(control, value.value, value.normalised), PBD.GroupControlDisposition.NoGroup)
    if value.times then
      local list = control:alist()
      list:clear_list()
      for k, sample in ipairs(value.times) do
        list:add(Temporal.timepos_t(sample), in_ardour_units(control, value.points[k], value.normalised), false, false)
      end
      control:set_automation_state(ARDOUR.AutoState.Play)
    end
    report("value", tostring(index), value.label, tostring(control:get_value()), tostring(value.times and #value.times or 0))
    ::next_value::
  end
end

-- 6. Unity routing into the master bus, both panners bypassed. A stereo track's outputs go to the
-- master's inputs one to one. A mono track keeps Ardour's flexible I/O (with strict I/O, Ardour
-- 7.3 gives a JUCE-built VST3 one input of two, and it is silent), so a stereo plugin makes its
-- outputs stereo; fxgrad renders a mono chain as the average of such a plugin's outputs, so the
-- track's outputs both go into both master inputs with the fader at 0.5 (-6.02 dB): the same mean,
-- exactly (halving is exact in floating point).
local master = session:master_out()
local outputs = track:n_outputs():n_audio()
for k = 0, master:n_inputs():n_audio() - 1 do
  if SPEC.channels == 1 then
    for j = 0, outputs - 1 do
      track:output():audio(j):connect(master:input():audio(k):name())
    end
  else
    track:output():audio(k % outputs):connect(master:input():audio(k):name())
  end
end
if SPEC.channels == 1 and outputs > 1 then
  track:gain_control():set_value(1 / outputs, PBD.GroupControlDisposition.NoGroup)
end
track:panner_shell():set_bypassed(true)
master:panner_shell():set_bypassed(true)
report("routing", tostring(outputs), tostring(track:gain_control():get_value()))

-- A plugin takes some values (LV2 patch properties, VST3 parameter changes) only inside its
-- process call, and a JUCE-built plugin saves the state it holds, not Ardour's controls; Ardour
-- runs the track while the transport is stopped, so a few cycles hand every value over before
-- the session (and the plugins' own state) is saved.
local processed, waited = AudioEngine:processed_samples(), 0
while AudioEngine:processed_samples() - processed < SPEC.settle_samples do
  if waited > 30 then fail("Ardour's engine processed no audio in 30 s") end
  sleep(0.05)
  waited = waited + 0.05
end

-- The plugin binaries this process runs, for fxgrad to check that they are the bundles it used.
local seen = {}
for line in io.lines("/proc/self/maps") do
  local file = string.match(line, "%s(/%S+%.so)$")
  if file and not seen[file] then
    seen[file] = true
    report("library", file)
  end
end
save(session)
close_session()
report("done")
