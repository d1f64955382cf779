%% Orrery's agent: compiled on the target node from this source at attach, removed at
%% detach. It answers batched queries in one call and bounds what it copies off the node.
%% It never blocks a user process: state reads use sys:get_state/2 with a short timeout.
%% Keep this file ASCII only (it is sent to the node as a charlist).
-module(orrery_agent_v1).
-export([query/1, summary/0, modules/1, names/2, trunc/2, version/0, pid_info/2,
         callback_module/1]).
%% Docs, completion and writes (live/docs.rs, live/writes.rs).
-export([docs/3, complete_modules/3, eval/3, state_for_write/3, swap_state/4, ets_restore/3,
         to_module/1, get_docs/1]).
%% Elixir's own error messages for evaluated code (here and in orrery_dbg_v1).
-export([elixir_eval/1]).

version() -> 1.

%% One call for everything a refresh needs. Req is a map; each key asks for one thing.
query(Req) when is_map(Req) ->
    Limits = maps:get(limits, Req, #{}),
    maps:fold(fun(K, V, Acc) ->
                      Acc#{K => safe(fun() -> run(K, V, Limits) end)}
              end, #{}, maps:remove(limits, Req)).

run(summary, _, _) -> summary();
run(modules, Mods, Limits) ->
    case maps:get(count_procs, Limits, true) of
        true -> modules(Mods);
        %% Counting walks every process: callers skip it on most refreshes.
        false -> maps:from_list([{M, module_info_of(M, nil)} || M <- Mods])
    end;
run(names, Names, Limits) -> names(Names, Limits);
run(ets, Tabs, Limits) -> orrery_views_v1:ets_info(Tabs, Limits);
%% Call counts (orrery_counts_v1): read only, or {Owner, Mods}: Owner counts exactly Mods.
run(calls, Mods, _) -> orrery_counts_v1:counts(Mods);
run(counts, {Owner, Mods}, _) -> orrery_counts_v1:want(Owner, Mods);
run(named, Named, Limits) -> orrery_names_v1:lookup(Named, Limits);
run(processes, Opts, _) -> orrery_views_v1:processes(Opts);
run(Other, _, _) -> {error, {unknown_query, Other}}.

safe(F) ->
    try F() catch C:R -> {error, {C, R}} end.

summary() ->
    Elixir = case application:get_key(elixir, vsn) of
                 {ok, V} -> list_to_binary(V);
                 undefined -> nil
             end,
    Apps = [{A, list_to_binary(Vsn)} || {A, _, Vsn} <- application:which_applications()],
    #{node => node(),
      otp => list_to_binary(erlang:system_info(otp_release)),
      erts => list_to_binary(erlang:system_info(version)),
      elixir => Elixir,
      apps => Apps,
      process_count => erlang:system_info(process_count),
      nodes => nodes(),
      hidden => nodes(hidden),
      memory => erlang:memory(total),
      uptime_ms => element(1, erlang:statistics(wall_clock)),
      creation => erlang:system_info(creation),
      trace_sessions => try orrery_guard_v1:sessions() catch _:_ -> false end,
      agent => version()}.

%% Per module: loaded?, md5, how many processes run it.
modules(Mods) ->
    Counts = module_procs(Mods),
    maps:from_list([{M, module_info_of(M, maps:get(M, Counts, 0))} || M <- Mods]).

module_info_of(M, Procs) ->
    case code:is_loaded(M) of
        false -> #{loaded => false, procs => Procs};
        {file, File} ->
            Md5 = try erlang:get_module_info(M, md5) catch _:_ -> nil end,
            Attrs = try erlang:get_module_info(M, attributes) catch _:_ -> [] end,
            Vsn = proplists:get_value(vsn, Attrs, nil),
            Stale = case is_list(File) andalso beam_lib:md5(File) of
                        {ok, {_, Md5}} -> false;
                        {ok, {_, _}} -> true;
                        _ -> unknown
                    end,
            #{loaded => true, md5 => Md5, vsn => Vsn, procs => Procs, stale => Stale,
              file => file_name(File), old_code => erlang:check_old_code(M)}
    end.

file_name(F) when is_list(F) -> list_to_binary(F);
file_name(F) -> F.

module_procs([]) -> #{};
module_procs(Mods) ->
    Want = maps:from_list([{M, 0} || M <- Mods]),
    %% Behaviour layers between gen_server and a wanted module (GenStage for a module
    %% that does `use GenStage`): their processes name the layer in `$initial_call`.
    Layers = orrery_names_v1:layers(Mods),
    %% At most this many state reads per walk (each cached for the process's life).
    put(orrery_layer_budget, 20),
    %% A layer's process counts for the layer and for its user module.
    Counts = lists:foldl(fun(P, Acc) ->
                        lists:foldl(fun(M, A) when is_map_key(M, A) -> A#{M := maps:get(M, A) + 1};
                                       (_, A) -> A
                                    end, Acc, orrery_names_v1:runs(P, Layers))
                end, Want, erlang:processes()),
    erase(orrery_layer_budget),
    orrery_names_v1:forget_dead(),
    Counts.

%% The module a process "runs": the callback module of an OTP process, else its initial call.
callback_module(P) ->
    case erlang:process_info(P, [dictionary, initial_call]) of
        undefined -> undefined;
        [{dictionary, D}, {initial_call, {IM, _, _}}] ->
            case lists:keyfind('$initial_call', 1, D) of
                {_, {supervisor, M, _}} -> M;
                {_, {M, _, _}} -> M;
                false -> IM
            end
    end.

%% Registered names (atoms) -> pid, state (bounded), queue, memory, reductions.
names(Names, Limits) ->
    maps:from_list([{N, name_info(N, Limits)} || N <- Names]).

name_info(Name, Limits) ->
    case whereis(Name) of
        undefined -> nil;
        Pid ->
            %% A process registered under a module's name but running another module
            %% (a Registry named `ConCache`) is not that module's process: say what it
            %% runs and leave its state out.
            case callback_module(Pid) of
                Name -> pid_info(Pid, Limits);
                'Elixir.Supervisor.Default' -> pid_info(Pid, Limits);
                Other -> case pid_info(Pid, Limits#{state => false}) of
                             nil -> nil;
                             Info -> Info#{runs => Other}
                         end
            end
    end.

pid_info(Pid, Limits) ->
    Info = erlang:process_info(Pid, [message_queue_len, memory, reductions, status,
                                     current_function]),
    case Info of
        undefined -> nil;
        _ ->
            Timeout = maps:get(state_timeout, Limits, 500),
            State = case maps:get(state, Limits, true) of
                        false -> nil;
                        true ->
                            try {ok, trunc(sys:get_state(Pid, Timeout), Limits)}
                            catch _:_ -> {error, not_available}
                            end
                    end,
            maps:from_list([{pid, Pid}, {state, State} | Info])
    end.

%% Bound a term before it leaves the node: depth, items per container, binary bytes, and a
%% total budget of visited nodes. Cut parts become '$orrery_trunc' (or a cut-binary tuple).
trunc(T, Limits) ->
    Depth = maps:get(depth, Limits, 8),
    Items = maps:get(items, Limits, 50),
    Bin = maps:get(binary, Limits, 256),
    Budget = maps:get(budget, Limits, 5000),
    {R, _} = tr(T, Depth, Items, Bin, Budget),
    R.

tr(_, _, _, _, B) when B =< 0 -> {'$orrery_trunc', 0};
tr(_, 0, _, _, B) -> {'$orrery_trunc', B - 1};
tr(T, _, _, Bin, B) when is_binary(T), byte_size(T) > Bin ->
    {{'$orrery_trunc_bin', binary:part(T, 0, Bin), byte_size(T)}, B - 1};
tr(T, _, _, _, B) when is_bitstring(T), bit_size(T) > 8 * 4096 ->
    {'$orrery_trunc', B - 1};
tr(T, D, N, Bin, B) when is_list(T) -> tr_list(T, D - 1, N, Bin, B - 1, []);
tr(T, D, N, Bin, B) when is_tuple(T) ->
    L = tuple_to_list(T),
    {Elems, B2} = tr_elems(lists:sublist(L, N), D - 1, N, Bin, B - 1, []),
    Extra = case length(L) > N of true -> ['$orrery_trunc']; false -> [] end,
    {list_to_tuple(Elems ++ Extra), B2};
tr(T, D, N, Bin, B) when is_map(T) ->
    {Pairs, B2} = tr_pairs(maps:next(maps:iterator(T)), D - 1, N, Bin, B - 1, []),
    M = maps:from_list(Pairs),
    case map_size(T) > map_size(M) of
        true -> {M#{'$orrery_trunc' => map_size(T) - map_size(M)}, B2};
        false -> {M, B2}
    end;
tr(T, _, _, _, B) -> {T, B - 1}.

tr_list([], _, _, _, B, Acc) -> {lists:reverse(Acc), B};
tr_list(_, _, 0, _, B, Acc) -> {lists:reverse(['$orrery_trunc' | Acc]), B};
tr_list([H | T], D, N, Bin, B, Acc) ->
    {H2, B2} = tr(H, D, N, Bin, B),
    case B2 =< 0 andalso T =/= [] of
        true -> {lists:reverse(['$orrery_trunc', H2 | Acc]), 0};
        false -> tr_list(T, D, N - 1, Bin, B2, [H2 | Acc])
    end;
tr_list(Tail, D, N, Bin, B, Acc) ->
    %% improper tail
    {T2, B2} = tr(Tail, D, N, Bin, B),
    {lists:reverse(Acc) ++ T2, B2}.

tr_elems([], _, _, _, B, Acc) -> {lists:reverse(Acc), B};
tr_elems([H | T], D, N, Bin, B, Acc) ->
    {H2, B2} = tr(H, D, N, Bin, B),
    tr_elems(T, D, N, Bin, B2, [H2 | Acc]).

tr_pairs(none, _, _, _, B, Acc) -> {Acc, B};
tr_pairs(_, _, 0, _, B, Acc) -> {Acc, B};
tr_pairs(_, _, _, _, B, Acc) when B =< 0 -> {Acc, B};
tr_pairs({K, V, I}, D, N, Bin, B, Acc) ->
    {K2, B2} = tr(K, D, N, Bin, B),
    {V2, B3} = tr(V, D, N, Bin, B2),
    tr_pairs(maps:next(I), D, N - 1, Bin, B3, [{K2, V2} | Acc]).

%% ---- Docs and completion (server/src/live/docs.rs) ----


%% Docs, specs and exports of a module (name as a binary, 'Elixir.' included), or
%% `unchanged` when its md5 is Known, or nil when there is no such module. Docs come from
%% the module's docs chunk (EEP 48; Elixir modules have one), specs from its debug info,
%% formatted in Elixir syntax when Elixir runs on the node. Doc texts are cut at doc_bytes.
docs(Name, Known, Limits) ->
    case to_module(Name) of
        undefined -> nil;
        M ->
            case module_md5(M) of
                nil -> nil;
                Known -> unchanged;
                Md5 ->
                    Bytes = maps:get(doc_bytes, Limits, 16384),
                    #{md5 => Md5,
                      loaded => code:is_loaded(M) =/= false,
                      docs => safe(fun() -> fetch_docs(M, Bytes) end),
                      specs => safe(fun() -> fetch_specs(M) end),
                      exports => safe(fun() -> exports_of(M) end)}
            end
    end.

%% An existing module atom for a name, without creating atoms for names that name nothing.
to_module(A) when is_atom(A) -> A;
to_module(B) when is_binary(B) ->
    try binary_to_existing_atom(B, utf8)
    catch error:badarg ->
            case code:where_is_file(unicode:characters_to_list(B) ++ ".beam") of
                non_existing -> undefined;
                _ -> binary_to_atom(B, utf8)
            end
    end.

module_md5(M) ->
    case code:is_loaded(M) of
        {file, _} -> try erlang:get_module_info(M, md5) catch _:_ -> nil end;
        false ->
            case code:which(M) of
                F when is_list(F) ->
                    case beam_lib:md5(F) of
                        {ok, {_, Md5}} -> Md5;
                        _ -> nil
                    end;
                _ -> nil
            end
    end.

get_docs(M) ->
    try code:get_doc(M)
    catch error:undef -> 'Elixir.Code':fetch_docs(M)
    end.

fetch_docs(M, Bytes) ->
    case get_docs(M) of
        {ok, Docs} -> docs_map(Docs, Bytes);
        {docs_v1, _, _, _, _, _, _} = Docs -> docs_map(Docs, Bytes);
        _ -> nil
    end.

docs_map({docs_v1, _Anno, _Lang, Format, ModDoc, _Meta, Entries}, Bytes) ->
    #{format => Format,
      moduledoc => doc_text(ModDoc, Bytes),
      entries => [doc_entry(E, Bytes) || E <- Entries]}.

doc_entry({{Kind, Name, Arity}, _Anno, Sig, Doc, Meta}, Bytes) ->
    Meta2 = case is_map(Meta) of true -> Meta; false -> #{} end,
    #{kind => Kind, name => Name, arity => Arity,
      signature => iolist_to_binary(lists:join(<<"\n">>, [S || S <- Sig, is_binary(S)])),
      doc => doc_text(Doc, Bytes),
      hidden => Doc =:= hidden,
      defaults => maps:get(defaults, Meta2, 0),
      deprecated => case maps:get(deprecated, Meta2, nil) of
                        D when is_binary(D) -> D;
                        _ -> nil
                    end}.

doc_text(#{<<"en">> := D}, Bytes) -> cut_text(html(D, false), Bytes);
doc_text(M, Bytes) when is_map(M), map_size(M) > 0 ->
    [D | _] = maps:values(M),
    cut_text(html(D, false), Bytes);
doc_text(_, _) -> nil.

%% Markdown docs are binaries already; application/erlang+html docs become plain text.
html(B, _) when is_binary(B) -> B;
html(L, Pre) when is_list(L) -> [html(X, Pre) || X <- L];
html({pre, _, C}, _) -> [<<"\n```erlang\n">>, html(C, true), <<"\n```\n\n">>];
html({code, _, C}, false) -> [<<"`">>, html(C, true), <<"`">>];
html({Tag, _, C}, Pre) when Tag =:= p; Tag =:= 'div'; Tag =:= dl; Tag =:= ul; Tag =:= ol ->
    [html(C, Pre), <<"\n\n">>];
html({Tag, _, C}, Pre) when Tag =:= h1; Tag =:= h2; Tag =:= h3; Tag =:= h4 ->
    [<<"### ">>, html(C, Pre), <<"\n\n">>];
html({li, _, C}, Pre) -> [<<"- ">>, html(C, Pre), <<"\n">>];
html({dt, _, C}, Pre) -> [<<"- **">>, html(C, Pre), <<"**\n">>];
html({dd, _, C}, Pre) -> [<<"  ">>, html(C, Pre), <<"\n">>];
html({em, _, C}, Pre) -> [<<"*">>, html(C, Pre), <<"*">>];
html({strong, _, C}, Pre) -> [<<"**">>, html(C, Pre), <<"**">>];
html({_, _, C}, Pre) -> html(C, Pre);
html(_, _) -> [].

cut_text(IoData, Bytes) ->
    B = iolist_to_binary(IoData),
    case byte_size(B) =< Bytes of
        true -> B;
        false ->
            Part = binary:part(B, 0, Bytes),
            Good = case unicode:characters_to_binary(Part) of
                       {incomplete, G, _} -> G;
                       {error, G, _} -> G;
                       G -> G
                   end,
            <<Good/binary, "\n\n(cut)">>
    end.

%% [{{Name, Arity}, [SpecText]}]; empty without debug info or without Elixir.
fetch_specs(M) ->
    case 'Elixir.Code.Typespec':fetch_specs(M) of
        {ok, Specs} ->
            [{{N, A}, [T || S <- lists:sublist(Forms, 4), T <- [spec_text(N, S)], T =/= nil]}
             || {{N, A}, Forms} <- Specs, not is_macro_name(N)];
        _ -> []
    end.

spec_text(N, S) ->
    try 'Elixir.Macro':to_string('Elixir.Code.Typespec':spec_to_quoted(N, S))
    catch _:_ -> nil
    end.

is_macro_name(N) -> lists:prefix("MACRO-", atom_to_list(N)).

%% Exported functions and macros as {function | macro, Name, Arity}, without generated ones.
exports_of(M) ->
    Raw = case code:is_loaded(M) of
              {file, _} -> erlang:get_module_info(M, exports);
              false ->
                  case beam_lib:chunks(code:which(M), [exports]) of
                      {ok, {_, [{exports, E}]}} -> E;
                      _ -> []
                  end
          end,
    lists:filtermap(fun({F, A}) ->
                            case atom_to_list(F) of
                                "MACRO-" ++ Rest -> {true, {macro, list_to_atom(Rest), A - 1}};
                                "module_info" -> false;
                                "__info__" -> false;
                                [$- | _] -> false;
                                _ -> {true, {function, F, A}}
                            end
                    end, Raw).

%% Module names under Base (a binary such as <<"Elixir.KV.">> or <<>>) whose next part
%% starts with Partial: [{Segment, IsModule}] (unique, sorted, at most Limit) and the total.
%% Looks at loaded modules and the modules of loaded applications (loaded or not yet).
complete_modules(Base, Partial, Limit) ->
    Loaded = [M || {M, _} <- code:all_loaded()],
    AppMods = lists:append([Ms || {App, _, _} <- application:loaded_applications(),
                                  {ok, Ms} <- [application:get_key(App, modules)]]),
    Prefix = <<Base/binary, Partial/binary>>,
    PL = byte_size(Prefix),
    BL = byte_size(Base),
    Segs = lists:usort(
             [segment(binary:part(N, BL, byte_size(N) - BL))
              || M <- lists:usort(Loaded ++ AppMods),
                 N <- [atom_to_binary(M, utf8)],
                 byte_size(N) >= PL, binary:part(N, 0, PL) =:= Prefix,
                 Base =/= <<>> orelse binary:part(N, 0, min(7, byte_size(N))) =/= <<"Elixir.">>,
                 not is_mixfile(M)]),
    Merged = merge_segments(Segs),
    #{total => length(Merged), items => lists:sublist(Merged, Limit)}.

%% The project of a mix.exs (X.MixProject, Mixfile): compiled in memory by mix, not code
%% anyone calls, so not offered.
is_mixfile(M) ->
    code:is_loaded(M) =/= false andalso
        case catch_source(M) of
            S when is_list(S) -> filename:basename(S) =:= "mix.exs";
            _ -> false
        end.

catch_source(M) ->
    try proplists:get_value(source, M:module_info(compile)) catch _:_ -> undefined end.

segment(Rest) ->
    case binary:split(Rest, <<".">>) of
        [Seg] -> {Seg, true};
        [Seg, _] -> {Seg, false}
    end.

%% {S, false} and {S, true} for the same S: it is a module and has submodules.
merge_segments([{S, false}, {S, true} | T]) -> [{S, true} | merge_segments(T)];
merge_segments([X | T]) -> [X | merge_segments(T)];
merge_segments([]) -> [].

%% ---- Writes (server/src/live/writes.rs; the server checks allowWrites and audits) ----


%% Evaluate an Elixir expression (a binary) with Binding in a separate process, killed
%% after Timeout ms: {ok, Value} | {error, Message}.
eval(Expr, Binding, Timeout) ->
    Parent = self(),
    {Pid, Ref} = spawn_monitor(
                   fun() ->
                           R = case code:ensure_loaded('Elixir.Code') of
                                   {module, _} ->
                                       elixir_eval(fun() -> element(1, 'Elixir.Code':eval_string(Expr, Binding)) end);
                                   _ -> {error, <<"Elixir is not available on this node">>}
                               end,
                           Parent ! {self(), R}
                   end),
    receive
        {Pid, R} -> erlang:demonitor(Ref, [flush]), R;
        {'DOWN', Ref, process, Pid, Why} ->
            {error, iolist_to_binary(io_lib:format("the evaluation died: ~0tp", [Why]))}
    after Timeout ->
            exit(Pid, kill),
            erlang:demonitor(Ref, [flush]),
            {error, iolist_to_binary(io_lib:format("the evaluation took more than ~p ms and was stopped", [Timeout]))}
    end.

%% Run F (which evaluates Elixir code): {ok, Value} | {error, Message}, the message as
%% Elixir shows it: `(KeyError) key :a not found in: %{}`. Elixir 1.15+ reports compile
%% errors (`undefined variable "x"`) as diagnostics: they are captured (so nothing is
%% printed on the node) and make the message; otherwise the exception's message/1
%% (Erlang errors normalized first), or the banner of a throw or exit. The `nofile:1:`
%% location of evaluated code is left out.
elixir_eval(F) ->
    Run = fun() -> try {ok, F()} catch C:R:St -> {caught, C, R, St} end end,
    {Result, Diags} = case erlang:function_exported('Elixir.Code', with_diagnostics, 1) of
                          true -> 'Elixir.Code':with_diagnostics(Run);
                          false -> {Run(), []}
                      end,
    case Result of
        {ok, V} -> {ok, V};
        {caught, C, R, St} -> {error, error_message(C, R, St, Diags)}
    end.

error_message(C, R, St, Diags) ->
    Errors = [maps:get(message, D) || D <- Diags, is_map(D),
                                      maps:get(severity, D, nil) =:= error,
                                      is_binary(maps:get(message, D, nil))],
    case Errors of
        [_ | _] ->
            Text = iolist_to_binary(lists:join(<<"\n">>, Errors)),
            case R of
                #{'__exception__' := true, '__struct__' := Mod} -> named(Mod, Text);
                _ -> Text
            end;
        [] -> exception_message(C, R, St)
    end.

exception_message(error, R, St) ->
    try 'Elixir.Exception':normalize(error, R, St) of
        #{'__struct__' := Mod} = E ->
            case 'Elixir.Exception':message(E) of
                M when is_binary(M) -> named(Mod, no_location(M));
                _ -> banner(error, R, St)
            end;
        _ -> banner(error, R, St)
    catch _:_ -> banner(error, R, St)
    end;
exception_message(C, R, St) -> banner(C, R, St).

named(Mod, Text) ->
    Name = try 'Elixir.Kernel':inspect(Mod) catch _:_ -> atom_to_binary(Mod, utf8) end,
    <<"(", Name/binary, ") ", Text/binary>>.

banner(C, R, St) ->
    B = try 'Elixir.Exception':format_banner(C, R, St)
        catch _:_ -> iolist_to_binary(io_lib:format("~p: ~0tp", [C, R]))
        end,
    case B of
        <<"** ", Rest/binary>> -> Rest;
        _ -> B
    end.

no_location(M) ->
    re:replace(M, "^nofile:[0-9]+(:[0-9]+)?: ", "", [{return, binary}]).

%% The process behind Target (a name or a pid), its state, and the value of Expr with
%% `state` bound to it: {ok, Pid, Old, New} | {error, Message}. Changes nothing.
state_for_write(Target, Expr, Timeout) ->
    Pid = case Target of
              P when is_pid(P) -> P;
              N when is_atom(N) -> whereis(N)
          end,
    case is_pid(Pid) andalso is_process_alive(Pid) of
        false -> {error, <<"no such process">>};
        true ->
            try sys:get_state(Pid, Timeout) of
                Old ->
                    case eval(Expr, [{state, Old}], Timeout) of
                        {ok, New} -> {ok, Pid, Old, New};
                        Err -> Err
                    end
            catch _:_ ->
                    {error, <<"its state cannot be read (not an OTP process, or busy)">>}
            end
    end.

%% Replace the state of Pid with New, only if it still is Expected ({expect, S}) or in any
%% case (any): swapped | changed | {error, Message}. Atomic in the process itself.
swap_state(Pid, Expect, New, Timeout) ->
    Self = self(),
    Ref = make_ref(),
    F = fun(S) ->
                case Expect of
                    {expect, S} -> Self ! {Ref, swapped}, New;
                    any -> Self ! {Ref, swapped}, New;
                    _ -> Self ! {Ref, changed}, S
                end
        end,
    try sys:replace_state(Pid, F, Timeout) of
        _ -> receive {Ref, R} -> R after 0 -> changed end
    catch C:E -> {error, iolist_to_binary(io_lib:format("replace_state failed: ~p: ~0tp", [C, E]))}
    end.

%% Put back the rows of Key in table T as they were (Rows may be empty).
ets_restore(T, Key, Rows) ->
    ets:delete(T, Key),
    ets:insert(T, Rows).
